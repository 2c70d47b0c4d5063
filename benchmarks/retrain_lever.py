"""Retraining on every pair for the chosen number of steps (issue 39): a run of the defaults holds out a
validation slice (a tenth of the pairs, by passage) to choose its step N and merge weight w; a second run then
trains on every pair, the held-out slice included, for N steps (its linear schedule ending at N), with the same
w, and no selection (nothing is held out to select with). Against the first run's model, at the cost of a second
run.

    python benchmarks/retrain_lever.py --base all-MiniLM-L6-v2 --set aipolicy --seeds 42,1,2

Each seed's first run is recorded with the label "retrain lever: the first run (defaults)" (the defaults, as
`quality_sets.py run` scores them; its own label so the defaults' column does not count a seed twice), the second
as "retrained on every pair for the chosen steps" with the summed wall time of both; scored as
quality_sets.py scores every model. Rows go to benchmarks/results/quality-<base>.jsonl. Never run as a test; the
wall times are not speed figures.
"""

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


@click.command()
@click.option("--base", default="all-MiniLM-L6-v2")
@click.option("--set", "name", default="aipolicy")
@click.option("--seeds", default="42,1,2")
def main(base, name, seeds):
    import torch
    from sentence_transformers import SentenceTransformer

    from embedder.train.console import device_name
    from quality_sets import record, score, train_spec
    machine = device_name(torch.device("cpu"))

    for seed in (int(s) for s in seeds.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            command = [sys.executable, str(REPO / "train.py"), "--base", base, "--train", train_spec(name),
                       "--seed", str(seed)]
            started = time.time()
            first = subprocess.run([*command, "--output", f"{tmp}/first"], capture_output=True, text=True)
            if first.returncode:
                sys.exit(f"the first run failed:\n{first.stderr[-3000:]}")
            first_seconds = time.time() - started
            kept = re.search(r"saved the model of step (\d+)(?:, merged with the base at w = ([\d.]+))?", first.stdout)
            if not kept or not int(kept[1]):
                sys.exit(f"the first run kept no trained step:\n{first.stdout[-2000:]}")
            steps, w = int(kept[1]), kept[2] or "1.0"
            record(base, {"system": "embedder", "label": "retrain lever: the first run (defaults)", "base": base,
                          "set": name, "seed": seed, "seconds": round(first_seconds, 1), "machine": machine,
                          "step": steps, "merge": float(w),
                          **score(SentenceTransformer(f"{tmp}/first", device="cpu"), name)})
            again = subprocess.run([*command, "--validation-split", "0", "--max-steps", str(steps), "--merge", w,
                                    "--output", f"{tmp}/again"], capture_output=True, text=True)
            if again.returncode:
                sys.exit(f"the second run failed:\n{again.stderr[-3000:]}")
            record(base, {"system": "embedder", "label": "retrained on every pair for the chosen steps", "base": base,
                          "set": name, "seed": seed, "seconds": round(time.time() - started, 1), "machine": machine,
                          "step": steps, "merge": float(w),
                          **score(SentenceTransformer(f"{tmp}/again", device="cpu"), name)})


if __name__ == "__main__":
    main()
