"""Checkpoint averaging along one run (issue 39), against the checkpoint the held-out selection keeps, in the same
run: the uniform average of the weights at every epoch end (a tail of the trajectory, as in stochastic weight
averaging without a cyclic schedule, or "LAWA", Kaddour 2022), and the average from the chosen epoch end on.

    θ_avg = (1/E) Σ_e θ_(end of epoch e)          e = 1…E      (and e = ê…E, ê the chosen one's epoch)

    python benchmarks/checkpoint_average.py --base all-MiniLM-L6-v2 --set aipolicy --seeds 42,1,2

For each seed: `train.py` with the defaults, `--merge off` and `--save-steps` = the run's steps per epoch (read
from the start-up report of a one-step run with the same flags), so a checkpoint holds each epoch end's weights;
the averages are built with embedder's own `averaging.RunningAverage`, put into the saved model (embedder.load, then
load_state_dict of our parameter names) and saved by `Embedder.save`. All three models come from one run, so
their differences are paired (no seed-to-seed spread between them). Scored as quality_sets.py scores every model
(ST's evaluator on the set's test split, stdlib:test, aipolicy's val split). Rows go to
benchmarks/results/quality-<base>.jsonl with labels "--merge off" (the selection), "epoch-end average, --merge
off" and "epoch-end average from the chosen epoch, --merge off". Never run as a test; wall times are not speed
figures.
"""

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
from safetensors.torch import load_file

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

    import embedder
    from embedder.train.checkpoints import list_checkpoints
    from embedder.train.console import device_name
    from embedder.train.averaging import RunningAverage
    from quality_sets import record, score, train_spec
    machine = device_name(torch.device("cpu"))

    for seed in (int(s) for s in seeds.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            command = [sys.executable, str(REPO / "train.py"), "--base", base, "--train", train_spec(name),
                       "--seed", str(seed), "--merge", "off"]
            probe = subprocess.run([*command, "--max-steps", "1", "--output", f"{tmp}/probe"], capture_output=True,
                                   text=True)
            per_epoch = re.search(r"steps: (\d+) per epoch", probe.stdout)
            if probe.returncode or not per_epoch:
                sys.exit(f"the one-step run failed:\n{probe.stderr[-3000:]}")
            per_epoch = int(per_epoch[1])
            started = time.time()
            output = Path(tmp) / "model"
            done = subprocess.run([*command, "--save-steps", str(per_epoch), "--output", str(output)],
                                  capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"the run failed:\n{done.stderr[-3000:]}")
            seconds = time.time() - started
            kept = re.search(r"saved the model of step (\d+)", done.stdout)
            chosen = int(kept[1]) if kept else 0
            record(base, {"system": "embedder", "label": "--merge off", "base": base, "set": name, "seed": seed,
                          "seconds": round(seconds, 1), "machine": machine, "step": chosen,
                          **score(SentenceTransformer(str(output), device="cpu"), name)})
            ends = [(step, path) for step, path in list_checkpoints(Path(f"{output}.checkpoints"))
                    if step % per_epoch == 0]
            first_kept = next((i for i, (step, _) in enumerate(ends) if step >= chosen), 0)
            for label, chosen_ends in (("epoch-end average, --merge off", ends),
                                       ("epoch-end average from the chosen epoch, --merge off", ends[first_kept:])):
                average = RunningAverage()
                for step, path in chosen_ends:
                    average.add(load_file(str(path / "model.safetensors")), f"step {step}")
                model = embedder.load(str(output), device="cpu")
                model.load_state_dict(average.average())
                folder = Path(tmp) / label.split(",")[0].replace(" ", "-")
                model.save(folder)
                record(base, {"system": "embedder", "label": label, "base": base, "set": name, "seed": seed,
                              "seconds": round(seconds, 1), "machine": machine,
                              "averaged_steps": [step for step, _ in chosen_ends],
                              **score(SentenceTransformer(str(folder), device="cpu"), name)})


if __name__ == "__main__":
    main()
