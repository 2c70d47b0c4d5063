"""Encode throughput (texts/s): sentence-transformers' `encode` against embedder's (torch fp32 and bf16) and the
exported ONNX graphs run by ONNX Runtime alone (onnx/sentence_embedding.onnx, fp32 and int8), same model, texts and
batch size.

    python benchmarks/encode_speed.py --model all-MiniLM-L6-v2 --model all-mpnet-base-v2 --batch-size 32 --repeats 3

Texts: the aipolicy test corpus (50 passages) and questions (100). Each repeat runs every system once on the whole
set, in turn (alternating, after one warm-up call each); the table gives the median texts/s and its ratio to ST's,
then how far each system's embeddings are from ST's (max |difference|, and the minimum cosine). The ONNX files are
exported first into a temporary folder (`embedder.model.onnx_export.export`, int8 for this CPU). ONNX Runtime uses
its default threads (one per core). Prints markdown tables. Never run as a test.
"""

import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SYSTEMS = ("ST fp32", "embedder fp32", "embedder bf16", "ONNX Runtime fp32", "ONNX Runtime int8")


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


@click.command()
@click.option("--model", "models", multiple=True, default=["all-MiniLM-L6-v2", "all-mpnet-base-v2"])
@click.option("--data", default=str(REPO.parent / "shared" / "data" / "aipolicy" / "test.json"))
@click.option("--batch-size", default=32, type=int)
@click.option("--repeats", default=3, type=int)
def main(models, data, batch_size, repeats):
    sys.path.insert(0, str(REPO))
    import onnxruntime
    import torch
    from sentence_transformers import SentenceTransformer

    import embedder
    from embedder.model import locate, onnx_export
    from embedder.model.onnx_export import OnnxSentenceEncoder, int8_file
    ir = json.loads(Path(data).read_text())
    sets = {"passages": list(ir["corpus"].values()), "questions": list(ir["questions"].values())}
    target = onnx_export.host_int8_target()
    print(f"{cpu_name()}, {os.cpu_count()} threads; batch {batch_size}; medians of {repeats}; torch {torch.__version__},"
          f" onnxruntime {onnxruntime.__version__}; int8 target {target}\n")
    rates, fidelity = [], []
    for name in models:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "model"
            ours = embedder.load(name, device="cpu")
            ours.save(folder)
            onnx_export.export(folder, folder, int8_target=target)
            st = SentenceTransformer(str(locate.model_folder(name)), device="cpu")
            onnx32 = OnnxSentenceEncoder(folder / "onnx" / "sentence_embedding.onnx", ours.tokenizer)
            onnx8 = OnnxSentenceEncoder(folder / "onnx" / int8_file("sentence_embedding", target), ours.tokenizer)
            encoders = {"ST fp32": st.encode, "embedder fp32": ours.encode,
                        "embedder bf16": lambda t, **k: ours.encode(t, compute_precision="bf16", **k),
                        "ONNX Runtime fp32": onnx32.encode, "ONNX Runtime int8": onnx8.encode}
            for label, texts in sets.items():
                seconds, outputs = {s: [] for s in SYSTEMS}, {}
                for system, encode in encoders.items():
                    encode(texts[:batch_size], batch_size=batch_size)  # warm-up
                for _ in range(repeats):
                    for system, encode in encoders.items():
                        started = time.perf_counter()
                        outputs[system] = np.asarray(encode(texts, batch_size=batch_size))
                        seconds[system].append(time.perf_counter() - started)
                rate = {s: len(texts) / statistics.median(seconds[s]) for s in SYSTEMS}
                rates.append(f"| {name} | {label} ({len(texts)}) | " + " | ".join(
                    f"{rate[s]:.1f}" + ("" if s == "ST fp32" else f" ({rate[s] / rate['ST fp32']:.2f}x)")
                    for s in SYSTEMS) + " |")
                reference = outputs["ST fp32"]
                cells = []
                for s in SYSTEMS[1:]:
                    got = outputs[s]
                    cos = (got * reference).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(reference, axis=1))
                    cells.append(f"{np.abs(got - reference).max():.1e} / {cos.min():.4f}")
                fidelity.append(f"| {name} | {label} | " + " | ".join(cells) + " |")
    print("texts/s (ratio to ST)\n")
    print("| model | texts | " + " | ".join(SYSTEMS) + " |\n|---|---|" + "---|" * len(SYSTEMS))
    print("\n".join(rates))
    print("\nagainst ST's embeddings: max |difference| / minimum cosine\n")
    print("| model | texts | " + " | ".join(SYSTEMS[1:]) + " |\n|---|---|" + "---|" * (len(SYSTEMS) - 1))
    print("\n".join(fidelity))


if __name__ == "__main__":
    main()
