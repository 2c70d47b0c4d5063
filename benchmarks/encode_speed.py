"""Encode throughput (texts/s), embedder against sentence-transformers, same model, texts and batch size.

    python benchmarks/encode_speed.py --model all-MiniLM-L6-v2 --model all-mpnet-base-v2 --batch-size 32

Texts: the aipolicy test corpus (50 passages) and questions (100), encoded in full by each library in turn,
after one warm-up call each; the largest |difference| between the two libraries' embeddings is printed too.
Prints a markdown table. Never run as a test.
"""

import json
import os
import platform
import sys
import time
from pathlib import Path

import click
import numpy as np

REPO = Path(__file__).resolve().parents[1]


@click.command()
@click.option("--model", "models", multiple=True, default=["all-MiniLM-L6-v2", "all-mpnet-base-v2"])
@click.option("--data", default=str(REPO.parent / "shared" / "data" / "aipolicy" / "test.json"))
@click.option("--batch-size", default=32, type=int)
@click.option("--device", default="cpu")
@click.option("--repeats", default=1, type=int)
def main(models, data, batch_size, device, repeats):
    sys.path.insert(0, str(REPO))
    import torch
    from sentence_transformers import SentenceTransformer

    import embedder
    import embedder.model.locate
    ir = json.loads(Path(data).read_text())
    sets = {"corpus": list(ir["corpus"].values()), "questions": list(ir["questions"].values())}
    print(f"device {device}, batch {batch_size}, torch {torch.__version__}, {platform.machine()} x{os.cpu_count()}\n")
    print("| model | texts | embedder texts/s | ST texts/s | ratio | max abs diff |\n|---|---|---|---|---|---|")
    for name in models:
        ours = embedder.load(name, device=device)
        st = SentenceTransformer(str(embedder.model.locate.model_folder(name)), device=device)
        for label, texts in sets.items():
            rates, outputs = {}, {}
            for system, encode in (("embedder", ours.encode), ("st", st.encode)):
                encode(texts[:batch_size], batch_size=batch_size)  # warm-up
                best = float("inf")
                for _ in range(repeats):
                    started = time.perf_counter()
                    outputs[system] = encode(texts, batch_size=batch_size)
                    best = min(best, time.perf_counter() - started)
                rates[system] = len(texts) / best
            diff = float(np.abs(outputs["embedder"] - outputs["st"]).max())
            print(f"| {name} | {label} ({len(texts)}) | {rates['embedder']:.1f} | {rates['st']:.1f} | "
                  f"{rates['embedder'] / rates['st']:.2f} | {diff:.1e} |")


if __name__ == "__main__":
    main()
