"""Whole-process wall time of a short fine-tune, embedder's train.py against sentence-transformers' trainer, on the CPU.

    python benchmarks/train_speed_cpu.py --steps 30 --batch-size 16 --repeats 3

Same base model (all-MiniLM-L6-v2, packaged weights), same data (aipolicy train pairs), same loss (MNRL, scale 20),
batch size, steps, lr, AdamW, no evaluation, one save at the end, plain random batches on both sides. The two run as
subprocesses, alternating (ST, ours, ST, ours, …); the table gives the median of each and the ratio. Needs
sentence-transformers and `datasets` (ST's trainer) installed. Never run as a test.
"""

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

REPO = Path(__file__).resolve().parents[1]

ST_SCRIPT = """
import json, sys
benchmarks, model_dir, data, out, steps, batch = sys.argv[1:7]
sys.path.insert(0, benchmarks)  # st_trainer only: nothing of embedder is imported in ST's timed process
from sentence_transformers import SentenceTransformer
from st_trainer import st_trainer
ir = json.load(open(data))
pairs = [(ir["questions"][q], ir["corpus"][p]) for q in ir["questions"] for p in ir["relevant_contexts"].get(q, [])]
model = SentenceTransformer(model_dir, device="cpu")
st_trainer(model, pairs, out + "/run", int(batch), max_steps=int(steps)).train()
model.save(out + "/model")
"""


def timed(command, env):
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"command failed: {' '.join(command[:4])}…\n{result.stderr[-2000:]}")
    return seconds


@click.command()
@click.option("--steps", default=30, type=int)
@click.option("--batch-size", default=16, type=int)
@click.option("--repeats", default=3, type=int)
@click.option("--data", default=str(REPO.parent / "shared" / "data" / "aipolicy" / "train.json"))
def main(steps, batch_size, repeats, data):
    sys.path.insert(0, str(REPO))
    from embedder import bases
    model_dir = str(bases.resolve("all-MiniLM-L6-v2"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "true"}
    times = {"sentence-transformers": [], "embedder": []}
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            times["sentence-transformers"].append(timed(
                [sys.executable, "-c", ST_SCRIPT, str(REPO / "benchmarks"), model_dir, data, tmp, str(steps),
                 str(batch_size)], env))
        with tempfile.TemporaryDirectory() as tmp:
            times["embedder"].append(timed(
                [sys.executable, str(REPO / "train.py"), "--base", "all-MiniLM-L6-v2", "--train", data, "--eval", "none",
                 "--max-steps", str(steps), "--batch-size", str(batch_size), "--matryoshka-dims", "none",
                 "--allow-duplicates", "--output", f"{tmp}/model"], env))
    st, ours = statistics.median(times["sentence-transformers"]), statistics.median(times["embedder"])
    machine = f"{platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}"
    print(f"all-MiniLM-L6-v2, {steps} steps at batch {batch_size}, whole process (load, train, save); {machine}\n")
    print("| system | runs (s) | median (s) |\n|---|---|---|")
    for name, values in times.items():
        print(f"| {name} | {', '.join(f'{v:.1f}' for v in values)} | {statistics.median(values):.1f} |")
    print(f"\nembedder is {st / ours:.2f}x faster than sentence-transformers")
    result = {"machine": machine, "steps": steps, "batch_size": batch_size, "seconds": times, "speedup": st / ours}
    (REPO / "benchmarks" / "results" / "cpu-train-speed.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
