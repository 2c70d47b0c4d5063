"""The model-soup lever (issue 39), measured before it becomes a default: K runs of embedder's defaults from
different seeds, averaged uniformly (embedder/train/soup.py), against one run.

    python benchmarks/soup_lever.py --base all-MiniLM-L6-v2 --set aipolicy --seeds 42,1 --members 3

For each recipe seed s the members are `python train.py --base B --train <set's train> --seed S_m --merge off
--output <tmp>` with S_m = s + 1000·m (m = 0…K−1): each member's data order, dropout and held-out validation slice
(embedder/data/holdout.py follows the seed) differ, so every pair trains most members. The members' saved weights
are averaged and the soup is scored as quality_sets.py scores every model (ST's evaluator, fp32, on the set's test
split, stdlib:test as the general set, aipolicy's val split where it has one — the split defaults are chosen on).
Rows go to benchmarks/results/quality-<base>.jsonl: each member alone (label "--merge off") and the soup (label
"soup of K, --merge off"), with the members' chosen steps and the summed wall time. The merge with the base is off
in both, so they compare like with like. Never run as a test; the wall times are not speed figures.
"""

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
from safetensors.torch import load_file, save_file

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


@click.command()
@click.option("--base", default="all-MiniLM-L6-v2")
@click.option("--set", "name", default="aipolicy")
@click.option("--seeds", default="42,1")
@click.option("--members", default=3, type=int)
def main(base, name, seeds, members):
    import torch
    from sentence_transformers import SentenceTransformer

    from embedder.train.console import device_name
    from embedder.train.averaging import uniform_average
    from quality_sets import record, score, train_spec
    machine = device_name(torch.device("cpu"))

    for seed in (int(s) for s in seeds.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            folders, steps, seconds = [], [], 0.0
            for m in range(members):
                member_seed = seed + 1000 * m
                folder = Path(tmp) / f"member{m}"
                started = time.time()
                done = subprocess.run([sys.executable, str(REPO / "train.py"), "--base", base, "--train",
                                       train_spec(name), "--seed", str(member_seed), "--merge", "off", "--output",
                                       str(folder)], capture_output=True, text=True)
                if done.returncode:
                    sys.exit(f"member {m} failed:\n{done.stderr[-3000:]}")
                took = time.time() - started
                seconds += took
                kept = re.search(r"saved the model of step (\d+)", done.stdout)
                steps.append(int(kept[1]) if kept else None)
                folders.append(folder)
                record(base, {"system": "embedder", "label": "--merge off", "base": base, "set": name,
                              "seed": member_seed, "seconds": round(took, 1), "machine": machine, "step": steps[-1],
                              **score(SentenceTransformer(str(folder), device="cpu"), name)})
            started = time.time()
            soup = Path(tmp) / "soup"
            subprocess.run(["cp", "-r", str(folders[0]), str(soup)], check=True)
            states = [load_file(str(f / "model.safetensors")) for f in folders]
            save_file(uniform_average(states, [f.name for f in folders]), str(soup / "model.safetensors"),
                      metadata={"format": "pt"})
            seconds += time.time() - started
            record(base, {"system": "embedder", "label": f"soup of {members}, --merge off", "base": base, "set": name,
                          "seed": seed, "seconds": round(seconds, 1), "machine": machine, "member_steps": steps,
                          **score(SentenceTransformer(str(soup), device="cpu"), name)})


if __name__ == "__main__":
    main()
