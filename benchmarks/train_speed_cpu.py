"""Whole-process wall time and peak memory of a short fine-tune: embedder's train.py against sentence-transformers'
trainer, on the CPU.

    python benchmarks/train_speed_cpu.py --repeats 3                   # both models below
    python benchmarks/train_speed_cpu.py --model minilm --repeats 3
    python benchmarks/train_speed_cpu.py --load busy --also-fp32        # under load: every core kept busy
    python benchmarks/train_speed_cpu.py --before ../before             # also another checkout's train.py

    minilm  all-MiniLM-L6-v2, plain MNRL, 30 steps at batch 16
    mpnet   all-mpnet-base-v2 + Matryoshka 768…64, 10 steps at batch 20

Same base model (packaged weights), same data (aipolicy train pairs), same loss (MNRL scale 20, Matryoshka where
given), batch size, steps, lr, AdamW, no evaluation, one save at the end, plain random batches on both sides.
sentence-transformers runs at fp32 (its CPU default); embedder at --precision auto (bf16 autocast where the CPU
computes bf16 natively, else fp32: the table says which) and, with --also-fp32, at fp32 too. The systems run as
subprocesses, alternating (ST, ours, ST, ours, …); the table gives the median of each, the ratio, and each
process's peak RSS (os.wait4's ru_maxrss). Needs sentence-transformers and `datasets` (ST's trainer). Never run
as a test.

--load runs the whole measurement beside another job started first and stopped at the end: `busy`, one process
whose os.cpu_count() children each spin on a core; `pytest`, this project's test suite (restarted when it ends);
`external`, a job the caller started first (say which).
Both systems then run under the same load, alternating, as on a shared machine or a laptop doing other work.
--before DIR adds DIR's train.py (a checkout of an earlier commit: `git worktree add DIR COMMIT`) to the rotation.
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


BUSY = """
import os
for _ in range(os.cpu_count() - 1):
    if os.fork() == 0:
        break
while True:
    pass
"""


def start_load(kind: str):
    """The other job of --load (None for none), its own process group so that stop_load ends all of it."""
    if kind in ("none", "external"):  # external: a job the caller started first and stops
        return None
    command = [sys.executable, "-c", BUSY] if kind == "busy" else \
        ["bash", "-c", f"while true; do {sys.executable} -m pytest -q -x -p no:cacheprovider tests; done"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    time.sleep(5)  # under way before the first timed run
    return process


def stop_load(process):
    if process is not None:
        os.killpg(process.pid, 9)
        process.wait()


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
@click.option("--load", type=click.Choice(["none", "busy", "pytest", "external"]), default="none",
              help="another job on the same cores, started first (see the docstring)")
@click.option("--before", type=click.Path(exists=True, file_okay=False), default=None,
              help="another checkout whose train.py joins the rotation (at --precision fp32 and auto)")
@click.option("--no-st", is_flag=True, help="leave sentence-transformers out (only embedder against --before)")
@click.option("--out", default=None, help="results file name under benchmarks/results/ (default: "
              "cpu-train-speed.json, or cpu-train-speed-load-KIND.json under --load)")
@click.option("--fp32-only", is_flag=True, help="time embedder at --precision fp32 only (not auto)")
def main(models, repeats, also_fp32, data, load, before, no_st, out, fp32_only):
    sys.path.insert(0, str(REPO))
    from embedder.model import precision
    from embedder.train.console import device_name
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "true"}
    feature = precision.cpu_bf16_feature()
    machine = (f"{device_name('cpu')}, {os.cpu_count()} cores, native bf16: {feature or 'no'}, "
               f"python {platform.python_version()}, load: {load}")
    results = {"machine": machine, "load": load, "models": {}}
    load_process = start_load(load)
    try:
        run_all(models, repeats, also_fp32, fp32_only, data, before, no_st, env, machine, results)
    finally:
        stop_load(load_process)
    name = out or ("cpu-train-speed.json" if load == "none" else f"cpu-train-speed-load-{load}.json")
    (REPO / "benchmarks" / "results" / name).write_text(json.dumps(results, indent=1) + "\n")


def run_all(models, repeats, also_fp32, fp32_only, data, before, no_st, env, machine, results):
    from embedder.model import locate as bases
    for key in models:
        name, steps, batch_size, dims = MODELS[key]
        model_dir = str(bases.model_folder(name))
        systems = ([] if no_st else ["sentence-transformers fp32"]) + ([] if fp32_only else ["embedder auto"]) + \
            (["embedder fp32"] if also_fp32 or fp32_only else [])
        systems += [f"before {s.split()[-1]}" for s in systems if before and s.startswith("embedder")]
        runs = {system: [] for system in systems}
        for _ in range(repeats):
            for system in systems:
                with tempfile.TemporaryDirectory() as tmp:
                    if system.startswith("sentence"):
                        command = [sys.executable, "-c", ST_SCRIPT, str(REPO / "benchmarks"), model_dir, data, tmp,
                                   str(steps), str(batch_size), dims]
                    else:
                        script = Path(before if system.startswith("before") else REPO) / "train.py"
                        command = [sys.executable, str(script), "--base", name, "--train", data, "--eval",
                                   "none", "--max-steps", str(steps), "--batch-size", str(batch_size),
                                   "--matryoshka-dims", dims, "--allow-duplicates", "--output", f"{tmp}/model",
                                   "--precision", system.split()[-1]]
                    runs[system].append(timed(command, env))
                    print(f"{name} {system}: {runs[system][-1][0]:.1f} s, {runs[system][-1][1]:.2f} GiB", flush=True)
        st = statistics.median(s for s, _ in runs[systems[0]])
        print(f"\n{name}, {steps} steps at batch {batch_size}, Matryoshka {dims}; whole process (load, train, save); "
              f"{machine}\n")
        print(f"| system | runs (s) | median (s) | speed-up vs {systems[0]} | peak RSS (GiB, max) |\n|---|---|---|---|---|")
        for system, values in runs.items():
            median = statistics.median(s for s, _ in values)
            print(f"| {system} | {', '.join(f'{s:.1f}' for s, _ in values)} | {median:.1f} | {st / median:.2f}x "
                  f"| {max(r for _, r in values):.2f} |")
        results["models"][name] = {"steps": steps, "batch_size": batch_size, "dims": dims,
                                   "runs": {s: [{"seconds": t, "peak_rss_gib": r} for t, r in v] for s, v in runs.items()}}


if __name__ == "__main__":
    main()
