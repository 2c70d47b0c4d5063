"""Whole-process wall time and peak memory of a short fine-tune: embedder's train.py against sentence-transformers'
trainer, on the CPU.

    python benchmarks/train_speed_cpu.py --repeats 3                   # both models below
    python benchmarks/train_speed_cpu.py --model minilm --repeats 3

    minilm  all-MiniLM-L6-v2, plain MNRL, 30 steps at batch 16
    mpnet   all-mpnet-base-v2 + Matryoshka 768…64, 10 steps at batch 20

Same base model (packaged weights), same data (aipolicy train pairs), same loss (MNRL scale 20, Matryoshka where
given), batch size, steps, lr, AdamW, no evaluation, one save at the end, plain random batches on both sides.
sentence-transformers runs at fp32 (its CPU default); embedder at --precision auto (bf16 autocast where the CPU
computes bf16 natively, else fp32: the table says which) and, with --also-fp32, at fp32 too. The systems run as
subprocesses, alternating (ST, ours, ST, ours, …); the table gives the median of each, the ratio, and each
process's peak RSS (os.wait4's ru_maxrss). Needs sentence-transformers and `datasets` (ST's trainer). Never run
as a test.
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
benchmarks, model_dir, data, out, steps, batch, dims = sys.argv[1:8]
sys.path.insert(0, benchmarks)  # st_trainer only: nothing of embedder is imported in ST's timed process
from sentence_transformers import SentenceTransformer
from st_trainer import st_trainer
ir = json.load(open(data))
pairs = [(ir["questions"][q], ir["corpus"][p]) for q in ir["questions"] for p in ir["relevant_contexts"].get(q, [])]
model = SentenceTransformer(model_dir, device="cpu")
dims = [int(d) for d in dims.split(",")] if dims != "none" else ()
st_trainer(model, pairs, out + "/run", int(batch), dims, max_steps=int(steps)).train()
model.save(out + "/model")
"""

MODELS = {"minilm": ("all-MiniLM-L6-v2", 30, 16, "none"),
          "mpnet": ("all-mpnet-base-v2", 10, 20, "768,512,256,128,64")}


def timed(command, env) -> tuple[float, float]:
    """(wall seconds, peak RSS in GiB) of one subprocess."""
    with tempfile.TemporaryFile("w+") as stderr:  # a file, not a pipe: a full pipe would block the child
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            stderr.seek(0)
            sys.exit(f"command failed: {' '.join(command[:4])}…\n{stderr.read()[-2000:]}")
    return seconds, usage.ru_maxrss / 2**20  # KiB -> GiB (Linux)


@click.command()
@click.option("--model", "models", multiple=True, type=click.Choice(list(MODELS)), default=list(MODELS))
@click.option("--repeats", default=3, type=int)
@click.option("--also-fp32", is_flag=True, help="time embedder at --precision fp32 as well")
@click.option("--data", default=str(REPO.parent / "shared" / "data" / "aipolicy" / "train.json"))
def main(models, repeats, also_fp32, data):
    sys.path.insert(0, str(REPO))
    from embedder.model import locate as bases, precision
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "true"}
    feature = precision.cpu_bf16_feature()
    machine = (f"{platform.machine()}, {os.cpu_count()} cores, native bf16: {feature or 'no'}, "
               f"python {platform.python_version()}")
    results = {"machine": machine, "models": {}}
    for key in models:
        name, steps, batch_size, dims = MODELS[key]
        model_dir = str(bases.model_folder(name))
        systems = ["sentence-transformers fp32", "embedder auto"] + (["embedder fp32"] if also_fp32 else [])
        runs = {system: [] for system in systems}
        for _ in range(repeats):
            for system in systems:
                with tempfile.TemporaryDirectory() as tmp:
                    if system.startswith("sentence"):
                        command = [sys.executable, "-c", ST_SCRIPT, str(REPO / "benchmarks"), model_dir, data, tmp,
                                   str(steps), str(batch_size), dims]
                    else:
                        command = [sys.executable, str(REPO / "train.py"), "--base", name, "--train", data, "--eval",
                                   "none", "--max-steps", str(steps), "--batch-size", str(batch_size),
                                   "--matryoshka-dims", dims, "--allow-duplicates", "--output", f"{tmp}/model",
                                   "--precision", system.split()[-1]]
                    runs[system].append(timed(command, env))
                    print(f"{name} {system}: {runs[system][-1][0]:.1f} s, {runs[system][-1][1]:.2f} GiB", flush=True)
        st = statistics.median(s for s, _ in runs[systems[0]])
        print(f"\n{name}, {steps} steps at batch {batch_size}, Matryoshka {dims}; whole process (load, train, save); "
              f"{machine}\n")
        print("| system | runs (s) | median (s) | speed-up vs ST | peak RSS (GiB, max) |\n|---|---|---|---|---|")
        for system, values in runs.items():
            median = statistics.median(s for s, _ in values)
            print(f"| {system} | {', '.join(f'{s:.1f}' for s, _ in values)} | {median:.1f} | {st / median:.2f}x "
                  f"| {max(r for _, r in values):.2f} |")
        results["models"][name] = {"steps": steps, "batch_size": batch_size, "dims": dims,
                                   "runs": {s: [{"seconds": t, "peak_rss_gib": r} for t, r in v] for s, v in runs.items()}}
    (REPO / "benchmarks" / "results" / "cpu-train-speed.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
