"""Long inputs and memory: 100,000 texts encode in streamed batches with peak memory bounded by the batch, not the
input count; texts far beyond max_seq_length are truncated, never an error. Measured in a fresh subprocess by its
peak resident memory (ru_maxrss)."""

import json
import subprocess
import sys

from conftest import REPO

SCRIPT = """
import json, resource, sys
sys.path.insert(0, sys.argv[2])
import embedder
model = embedder.load(sys.argv[1], device="cpu")
model.encode(["warm up"] * 256, batch_size=256)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
n = int(sys.argv[3])
texts = [f"text number {i} " + "word " * (i % 50) for i in range(n)] + ["very long " * 5000]
vectors = model.encode(texts, batch_size=256)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rows": len(vectors), "dim": vectors.shape[1], "growth_mb": (after - before) / 1024}))
"""


def test_encoding_100k_texts_has_bounded_memory(tiny_bert_folder):
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tiny_bert_folder), str(REPO), "100000"],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["rows"] == 100_001 and report["dim"] == 32
    # inputs (~10 MB of Python strings) + output (12.8 MB) + one batch of activations; far below a
    # whole-input tensor (100k x 64 tokens x 32 dims x 4 bytes x several layers)
    assert report["growth_mb"] < 300, report
