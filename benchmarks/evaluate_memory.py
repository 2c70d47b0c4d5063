"""Peak memory and wall time of `python evaluate.py` on a large synthetic corpus (default 200,000 passages).

    python benchmarks/evaluate_memory.py --passages 200000 --queries 1000 --model all-MiniLM-L6-v2

Passages are generated deterministically from a small vocabulary (lengths 8-60 words); each query has one
relevant passage. Peak resident memory is the child process's ru_maxrss. Prints a markdown table.
"""

import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

REPO = Path(__file__).resolve().parents[1]
WORDS = ("policy data system model risk privacy rights review audit safety public access notice consent "
         "automated decision impact human oversight testing security fairness bias report agency citizen").split()


@click.command()
@click.option("--passages", default=200_000, type=int)
@click.option("--queries", default=1_000, type=int)
@click.option("--model", default="all-MiniLM-L6-v2")
@click.option("--batch-size", default=128, type=int)
def main(passages, queries, model, batch_size):
    rng = random.Random(0)
    corpus = {f"p{i}": " ".join(rng.choices(WORDS, k=rng.randint(8, 60))) for i in range(passages)}
    picked = rng.sample(range(passages), queries)
    data = {"questions": {f"q{i}": " ".join(corpus[f"p{p}"].split()[:6]) + "?" for i, p in enumerate(picked)},
            "corpus": corpus, "relevant_contexts": {f"q{i}": [f"p{p}"] for i, p in enumerate(picked)}}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.json"
        path.write_text(json.dumps(data))
        started = time.perf_counter()
        result = subprocess.run([sys.executable, str(REPO / "evaluate.py"), "--model", model, "--data", str(path),
                                 "--batch-size", str(batch_size)], capture_output=True, text=True)
        seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(result.stderr[-2000:])
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    map_line = next((line for line in result.stdout.splitlines() if "cosine_map@100" in line), "")
    print(f"| passages | queries | model | peak RSS (MB) | wall (s) |\n|---|---|---|---|---|\n"
          f"| {passages} | {queries} | {model} | {peak_mb:.0f} | {seconds:.0f} |")
    print(map_line)


if __name__ == "__main__":
    main()
