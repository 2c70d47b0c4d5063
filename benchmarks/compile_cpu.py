"""Whether torch.compile (inductor) pays for the encoder layers of a CPU training step.

    python benchmarks/compile_cpu.py --base all-MiniLM-L6-v2 --steps 12 --rounds 2

Each run is train.py's training (embedder.train.run.train, aipolicy or --train, no evaluation) in a fresh
process; the compiled variant wraps every encoder Layer's forward in torch.compile(dynamic=True) before training
(the packed path's length groups vary in number and size from step to step, so shapes are dynamic). Per run: the
first two steps (where compilation happens), and the median of steps 3… . Variants alternate within each round.
Prints one table; never run as a test. Say which CPU (`lscpu` flags) a figure comes from.
"""

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
AIPOLICY = REPO.parent / "shared" / "data" / "aipolicy" / "train.json"


def run_one(base, train_data, batch_size, steps, precision, compiled):
    """One training run in this process; returns the per-step seconds and the resolved precision."""
    import torch

    import embedder
    import embedder.train.run
    from embedder.model.encoder import Layer
    if compiled:
        Layer.forward = torch.compile(Layer.forward, dynamic=True)
    times, last = [], [time.perf_counter()]

    def hook(step):
        now = time.perf_counter()
        times.append(now - last[0])
        last[0] = now

    with tempfile.TemporaryDirectory() as tmp:
        config = embedder.TrainConfig(base=base, train=(train_data,), eval=(), eval_general=(), output=f"{tmp}/m",
                                      max_steps=steps, batch_size=batch_size, precision=precision,
                                      matryoshka_dims=None, merge="off")
        last[0] = time.perf_counter()
        result = embedder.train.run.train(config, echo=lambda *a, **k: None, step_hook=hook)
    return {"steps": times, "precision": result.config.precision}


@click.command()
@click.option("--base", default="all-MiniLM-L6-v2")
@click.option("--train", "train_data", default=str(AIPOLICY))
@click.option("--batch-size", default=16, type=int)
@click.option("--steps", default=12, type=int)
@click.option("--rounds", default=2, type=int)
@click.option("--precision", "precisions", multiple=True, default=["fp32", "auto"])
@click.option("--child", default=None, hidden=True)
def main(base, train_data, batch_size, steps, rounds, precisions, child):
    if child:
        precision, compiled = child.split(":")
        print(json.dumps(run_one(base, train_data, batch_size, steps, precision, compiled == "1")))
        return
    from embedder.train.console import device_name
    results = {}
    for _ in range(rounds):
        for precision in precisions:
            for compiled in (False, True):
                out = subprocess.run([sys.executable, __file__, "--base", base, "--train", train_data,
                                      "--batch-size", str(batch_size), "--steps", str(steps),
                                      "--child", f"{precision}:{int(compiled)}"],
                                     capture_output=True, text=True, check=True).stdout
                row = json.loads(out.strip().splitlines()[-1])
                results.setdefault((precision, compiled), []).append(row)
    import torch
    print(f"{base}, batch {batch_size}, {steps} steps of {Path(train_data).parent.name or train_data}; "
          f"{device_name(torch.device('cpu'))}, torch {torch.__version__}\n")
    print("| precision | layers | steps 1-2 (s) | step 3… median (s) |")
    print("|---|---|---|---|")
    for (precision, compiled), rows in results.items():
        first = statistics.median(sum(r["steps"][:2]) for r in rows)
        steady = statistics.median(statistics.median(r["steps"][2:]) for r in rows)
        print(f"| {rows[0]['precision']} | {'torch.compile' if compiled else 'eager'} | {first:.2f} | {steady:.3f} |")


if __name__ == "__main__":
    main()
