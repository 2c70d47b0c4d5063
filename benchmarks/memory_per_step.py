"""Resident memory step by step during a fine-tune, and what glibc's malloc holds: where the main job's growing peak
goes.

    python benchmarks/memory_per_step.py --base all-MiniLM-L6-v2 --steps 90 --trim none --trim every-step --trim 10

Trains on the embedded default data (the main job's: batch 20, the seeds' Matryoshka dims, no evaluation), one
fresh process per --trim setting, alternating; `none` leaves malloc alone, `every-step` calls glibc's
malloc_trim(0) after every optimiser step, a number N after every N-th. Prints, per setting, the resident set
after every 10th step, the peak (VmHWM), the free memory malloc holds at the end (mallinfo2's fordblks, all
arenas) and the training steps' total time. Linux with glibc only; never run as a test.
"""

import ctypes
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import click

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import ctypes, json, sys, time
sys.path.insert(0, sys.argv[1])
from embedder.train import run as recipe
from embedder.train.config import TrainConfig

base, steps, trim, output = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
libc = ctypes.CDLL("libc.so.6")

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

libc.mallinfo2.restype = MallInfo2

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024

rows, times = [], [time.perf_counter()]
def hook(step):
    if trim == "every-step" or (trim != "none" and step % int(trim) == 0):
        libc.malloc_trim(0)
    times.append(time.perf_counter())
    if step % 10 == 0:
        rows.append((step, status("VmRSS")))

recipe.train(TrainConfig(base=base, max_steps=steps, epochs=100, eval=(), eval_general=(), output=output,
                         overwrite=True), echo=lambda *a, **k: None, step_hook=hook)
print(json.dumps({"rows": rows, "peak": status("VmHWM"), "free": libc.mallinfo2().fordblks,
                  "steps_s": times[-1] - times[0]}))
"""


@click.command()
@click.option("--base", default="all-MiniLM-L6-v2")
@click.option("--steps", default=90, type=int)
@click.option("--trim", "trims", multiple=True, default=["none", "every-step", "10"],
              help="none, every-step, or N (every N-th step); repeatable")
@click.option("--repeats", default=1, type=int)
def main(base, steps, trims, repeats):
    results = {trim: [] for trim in trims}
    for _ in range(repeats):
        for trim in trims:
            with tempfile.TemporaryDirectory() as tmp:
                run = subprocess.run([sys.executable, "-c", CHILD, str(REPO), base, str(steps), trim, f"{tmp}/model"],
                                     capture_output=True, text=True, check=True)
            results[trim].append(json.loads(run.stdout.strip().splitlines()[-1]))
            print(f"{trim}: {results[trim][-1]['steps_s']:.1f} s", file=sys.stderr, flush=True)
    gib = 2**30
    libc = ctypes.CDLL("libc.so.6")
    libc.gnu_get_libc_version.restype = ctypes.c_char_p
    print(f"\n{base}, {steps} steps at batch 20 on the default data; glibc {libc.gnu_get_libc_version().decode()}\n")
    print("| malloc_trim | RSS after steps 10, 20, … (GiB) | peak RSS (GiB) | malloc's free memory at the end (GiB) "
          "| steps (s) |\n|---|---|---|---|---|")
    for trim, runs in results.items():
        first = runs[0]
        print(f"| {trim} | {', '.join(f'{rss / gib:.2f}' for _, rss in first['rows'])} | "
              f"{max(r['peak'] for r in runs) / gib:.2f} | {first['free'] / gib:.2f} | "
              f"{', '.join(format(r['steps_s'], '.1f') for r in runs)} |")


if __name__ == "__main__":
    main()
