"""Training-step and encode speed, embedder against sentence-transformers' trainer, side by side on one device.

    python benchmarks/speed.py shapes                 # once, where the base models are installed: config + tokenizer
    python benchmarks/speed.py run                    # GPU: mpnet-base, MiniLM, BERT-base; batch 20 and 128; fp32, bf16
    python benchmarks/speed.py run --cpu-smoke --out /tmp/smoke.json   # tiny model, a few steps (CI runs this)

Models are random-initialised weights (seed 0) of the real configurations, written once per run into a temporary ST
folder that both systems load: `shapes` copies config.json, the tokenizer and the ST module files (no weights, ~1 MB
each) from the installed all-MiniLM-L6-v2 and all-mpnet-base-v2 into benchmarks/shapes/ (git-ignored), so the folder
can travel to a GPU machine without the weights. "bert-base" is bge-base-en-v1.5's shape: BERT 12x768, CLS pooling,
max_seq_length 512, MiniLM's (bert-base-uncased) vocabulary.

Every measurement runs in a fresh subprocess (a "worker"), alternating ST, embedder, ST, embedder… for --repeats
rounds; the table gives medians. Same work on both sides: the same pairs, plain random batches of the same size,
MNRL scale 20 (+ Matryoshka over the seeds' dims unless --dims none), AdamW lr 5e-5 with a linear schedule over
--steps, max_grad_norm 1.0, dropout on, the same precision (fp32 weights; bf16 = autocast on both sides), TF32 left
at torch's default (off for matmuls). Per step: the time between consecutive optimiser steps (each side's loop already
synchronises once per step), median over the steps after --warmup; throughput = steps after warm-up / their wall
time. End-to-end = load -> trained -> saved model, in the worker. Peak memory: torch.cuda.max_memory_allocated on
CUDA, peak RSS on the CPU. Tokens: real (non-padding) tokens per step, the tokens ST computes (each column padded to
its longest text) and the tokens embedder's GEMMs compute (packed: the real ones; attention runs on the padded view).
Encode: all texts of the data once (after a warm-up batch), texts/s, ST's `encode` in fp32 (its default) and with
bf16 weights, embedder's in fp32 and bf16 autocast.
Needs sentence-transformers and `datasets` (ST's trainer). Writes benchmarks/results/<device>.json (or --out) and
prints markdown tables. Never run as a timed test (tests/test_benchmarks.py only checks the CPU smoke mode runs).
"""

import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
from st_trainer import st_trainer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHAPES = REPO / "benchmarks" / "shapes"
AIPOLICY = REPO.parent / "shared" / "data" / "aipolicy" / "train.json"
WEIGHT_FILES = {"model.safetensors", "pytorch_model.bin", "README.md", ".gitattributes", "data_config.json"}

# name: (installed base it copies, config.json overrides, ST overrides)
SHAPE_SOURCES = {
    "minilm": ("all-MiniLM-L6-v2", {}, {}),
    "mpnet-base": ("all-mpnet-base-v2", {}, {}),
    "bert-base": ("all-MiniLM-L6-v2", {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                                       "intermediate_size": 3072},
                  {"max_seq_length": 512, "pooling": "cls"}),
    "tiny": ("all-MiniLM-L6-v2", {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                                  "intermediate_size": 64}, {"max_seq_length": 64}),
}


def write_shape(name: str, out: Path) -> None:
    """config + tokenizer + ST module files of an installed base, with the shape's changes; no weights."""
    from embedder.model import locate as bases
    source, config_changes, st_changes = SHAPE_SOURCES[name]
    folder = Path(bases.model_folder(source))
    if out.exists():
        shutil.rmtree(out)
    for path in folder.rglob("*"):
        if path.is_file() and path.name not in WEIGHT_FILES:
            target = out / path.relative_to(folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, **config_changes}, indent=2))
    st_config = json.loads((out / "sentence_bert_config.json").read_text())
    if "max_seq_length" in st_changes:
        st_config["max_seq_length"] = st_changes["max_seq_length"]
    (out / "sentence_bert_config.json").write_text(json.dumps(st_config, indent=2))
    pooling = json.loads((out / "1_Pooling" / "config.json").read_text())
    pooling["word_embedding_dimension"] = config_changes.get("hidden_size", config["hidden_size"])
    if st_changes.get("pooling") == "cls":
        pooling["pooling_mode_mean_tokens"], pooling["pooling_mode_cls_token"] = False, True
    (out / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2))


def random_model(shape: Path, out: Path) -> None:
    """An ST folder: the shape's files plus random weights (seed 0) of its transformers config."""
    import torch
    from transformers import AutoConfig, AutoModel
    shutil.copytree(shape, out)
    torch.manual_seed(0)
    model = AutoModel.from_config(AutoConfig.from_pretrained(shape))
    model.save_pretrained(out, safe_serialization=True)


def load_pairs(spec: str, max_pairs: int | None) -> list[tuple[str, str]]:
    from embedder.data.specs import load_train
    rows = [(r[0], r[1]) for r in load_train(spec).rows]
    return rows[:max_pairs] if max_pairs else rows


# ----- workers: one measurement each, in a fresh process; print one JSON line ---------------------------------------
def peak_memory_mb(device: str) -> float:
    import resource

    import torch
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synchronize(device: str) -> None:
    import torch
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def step_figures(stamps: list[float], warmup: int, batch_size: int) -> dict:
    """stamps[i]: wall clock after optimiser step i+1 (stamps[0] after the first)."""
    timed = stamps[warmup - 1:] if warmup else stamps
    gaps = [b - a for a, b in zip(timed, timed[1:])]
    seconds = timed[-1] - timed[0]
    return {"step_ms": 1000 * statistics.median(gaps), "steps_per_s": len(gaps) / seconds,
            "pairs_per_s": len(gaps) * batch_size / seconds, "timed_steps": len(gaps)}


def train_worker(system, model_dir, pairs, batch_size, precision, steps, warmup, dims, device, out_dir) -> dict:
    import torch
    stamps = []

    def stamp(step):  # after optimiser step `step`; the last one waits for the GPU
        if step == steps:
            synchronize(device)
        stamps.append(time.perf_counter())

    started = time.perf_counter()
    if system == "embedder":
        from embedder.train.config import TrainConfig
        from embedder.train.run import train
        train_file = Path(out_dir) / "pairs.jsonl"
        train_file.write_text("".join(json.dumps({"anchor": a, "positive": p}) + "\n" for a, p in pairs))
        config = TrainConfig(base=model_dir, train=(str(train_file),), eval=(), output=f"{out_dir}/model",
                             epochs=math.ceil(steps / math.ceil(len(pairs) / batch_size)), max_steps=steps,
                             batch_size=batch_size, matryoshka_dims=tuple(dims) if dims else None,
                             precision=precision, sampler="random", eval_steps=None, device=device)
        train(config, echo=lambda *a, **k: None, step_hook=stamp)
    else:
        from sentence_transformers import SentenceTransformer
        from transformers import TrainerCallback

        class Stamp(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                stamp(state.global_step)

        model = SentenceTransformer(model_dir, device=device)
        st_trainer(model, pairs, f"{out_dir}/run", batch_size, dims, max_steps=steps, precision=precision,
                   callbacks=[Stamp()]).train()
        model.save(f"{out_dir}/model")
    end_to_end = time.perf_counter() - started
    return {**step_figures(stamps, warmup, batch_size), "end_to_end_s": end_to_end,
            "peak_mb": peak_memory_mb(device), "steps": len(stamps), "torch": torch.__version__}


def encode_worker(system, model_dir, texts, batch_size, precision, device) -> dict:
    import torch
    if system == "embedder":
        import embedder
        model = embedder.load(model_dir, device=device)
        encode = lambda items: model.encode(items, batch_size=batch_size, compute_precision=precision)  # noqa: E731
    else:
        from sentence_transformers import SentenceTransformer
        model = SentenceTransformer(model_dir, device=device)
        if precision == "bf16":
            model = model.to(torch.bfloat16)  # ST has no autocast in encode: bf16 weights
        encode = lambda items: model.encode(items, batch_size=batch_size)  # noqa: E731
    encode(texts[:batch_size])  # warm-up
    synchronize(device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    encode(texts)
    synchronize(device)
    seconds = time.perf_counter() - started
    return {"texts_per_s": len(texts) / seconds, "seconds": seconds, "peak_mb": peak_memory_mb(device)}


# ----- the parent: token counts, alternation, tables -----------------------------------------------------------------
def token_counts(model_dir: str, pairs, batch_size: int, steps: int) -> dict:
    """Mean tokens per step over `steps` random batches: real, ST's (each column padded), embedder's GEMM rows."""
    import numpy as np

    import embedder
    tokenizer = embedder.load(model_dir, device="cpu").tokenizer
    lengths = [np.array([len(ids) for ids in tokenizer.encode_unpadded([p[c] for p in pairs])]) for c in (0, 1)]
    rng = np.random.default_rng(0)
    real = padded = 0
    for _ in range(steps):
        rows = rng.choice(len(pairs), size=min(batch_size, len(pairs)), replace=False)
        for column in lengths:
            real += int(column[rows].sum())
            padded += int(column[rows].max()) * len(rows)
    return {"real": real / steps, "st_computed": padded / steps, "embedder_gemm": real / steps}


def run_worker(args: list[str]) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, __file__, "worker", *args], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(f"worker {' '.join(args[:8])} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def device_name(device: str) -> str:
    import torch
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(0)
    return f"cpu {platform.machine()} {os.cpu_count()} cores"


@click.group()
def cli():
    pass


@cli.command()
@click.option("--out", default=str(SHAPES), show_default=True)
@click.option("--model", "models", multiple=True, default=["minilm", "mpnet-base", "bert-base", "tiny"])
def shapes(out, models):
    """Write the models' config + tokenizer folders (no weights) into --out."""
    for name in models:
        write_shape(name, Path(out) / name)
        click.echo(f"wrote {Path(out) / name}")


@cli.command()
@click.option("--models", default="mpnet-base,minilm,bert-base", show_default=True)
@click.option("--batch-sizes", default="20,128", show_default=True)
@click.option("--precisions", default="bf16,fp32", show_default=True)
@click.option("--steps", default=60, show_default=True, type=int)
@click.option("--warmup", default=10, show_default=True, type=int)
@click.option("--repeats", default=3, show_default=True, type=int)
@click.option("--dims", default="auto", show_default=True, help="Matryoshka: auto (the seeds' dims) or none")
@click.option("--data", default=None, help="training pairs (default: aipolicy train beside the repo, else stdlib:train)")
@click.option("--max-pairs", default=None, type=int)
@click.option("--encode-batch-size", default=128, show_default=True, type=int)
@click.option("--shapes-dir", default=str(SHAPES), show_default=True)
@click.option("--cpu-smoke", is_flag=True, help="tiny model, batch 4, 4 steps, one round, fp32, on the CPU")
@click.option("--out", default=None, help="JSON path (default benchmarks/results/<device>.json)")
def run(models, batch_sizes, precisions, steps, warmup, repeats, dims, data, max_pairs, encode_batch_size,
        shapes_dir, cpu_smoke, out):
    """Measure and print the tables."""
    import torch

    from embedder.train.config import SEED_DIMS
    device = "cuda" if torch.cuda.is_available() and not cpu_smoke else "cpu"
    if cpu_smoke:
        models, batch_sizes, precisions, steps, warmup, repeats = "tiny", "4", "fp32", 4, 1, 1
        data, max_pairs, encode_batch_size = data or "stdlib:train", max_pairs or 64, 16
    data = data or (str(AIPOLICY) if AIPOLICY.is_file() else "stdlib:train")
    pairs = load_pairs(data, max_pairs)
    texts = sorted({t for pair in pairs for t in pair})
    result = {"device": device_name(device), "torch": torch.__version__, "python": platform.python_version(),
              "data": os.path.relpath(data, REPO) if Path(data).is_file() else data, "pairs": len(pairs),
              "steps": steps, "warmup": warmup, "repeats": repeats,
              "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "capture_s": None,
              "note": "eager steps (no CUDA graphs yet): nothing is captured or compiled", "train": [], "encode": []}
    for name in ("transformers", "sentence_transformers", "datasets"):
        try:
            result[name] = __import__(name).__version__
        except ImportError:
            result[name] = None
    with tempfile.TemporaryDirectory() as tmp:
        for model_name in models.split(","):
            shape = Path(shapes_dir) / model_name
            if not shape.is_dir():
                write_shape(model_name, shape)
            model_dir = f"{tmp}/{model_name}"
            random_model(shape, Path(model_dir))
            width = json.loads((shape / "config.json").read_text())["hidden_size"]
            model_dims = [width, *(d for d in SEED_DIMS if d < width)] if dims == "auto" else []  # Matryoshka on
            for batch_size in [int(b) for b in batch_sizes.split(",")]:
                tokens = token_counts(model_dir, pairs, batch_size, steps)
                for precision in precisions.split(","):
                    runs = {"sentence-transformers": [], "embedder": []}
                    for _ in range(repeats):
                        for system in runs:
                            runs[system].append(run_worker(
                                ["train", system, model_dir, data, str(max_pairs or 0), str(batch_size), precision,
                                 str(steps), str(warmup), ",".join(map(str, model_dims)) or "none", device]))
                    row = {"model": model_name, "batch": batch_size, "precision": precision, "dims": model_dims,
                           "tokens_per_step": tokens, "runs": runs}
                    for system, values in runs.items():
                        for key in ("step_ms", "pairs_per_s", "peak_mb", "end_to_end_s"):
                            row[f"{system}_{key}"] = statistics.median(v[key] for v in values)
                    row["speedup"] = row["sentence-transformers_step_ms"] / row["embedder_step_ms"]
                    result["train"].append(row)
                    click.echo(json.dumps({k: v for k, v in row.items() if k != "runs"}), err=True)
            for precision in precisions.split(","):
                runs = {"sentence-transformers": [], "embedder": []}
                for _ in range(repeats):
                    for system in runs:
                        runs[system].append(run_worker(["encode", system, model_dir, data, str(max_pairs or 0),
                                                        str(encode_batch_size), precision, device]))
                row = {"model": model_name, "batch": encode_batch_size, "precision": precision, "texts": len(texts),
                       "runs": runs}
                for system, values in runs.items():
                    for key in ("texts_per_s", "peak_mb"):
                        row[f"{system}_{key}"] = statistics.median(v[key] for v in values)
                result["encode"].append(row)
    for row in result["encode"]:  # against ST's default (fp32) encode of the same model
        st_fp32 = next(r for r in result["encode"] if r["model"] == row["model"] and r["precision"] == "fp32")
        row["speedup_same_precision"] = row["embedder_texts_per_s"] / row["sentence-transformers_texts_per_s"]
        row["speedup_vs_st_fp32"] = row["embedder_texts_per_s"] / st_fp32["sentence-transformers_texts_per_s"]
    print_tables(result)
    slug = re.sub(r"[^a-z0-9]+", "-", result["device"].lower()).strip("-")
    path = Path(out) if out else REPO / "benchmarks" / "results" / f"{slug}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    click.echo(f"\nwrote {path}")


def print_tables(result: dict) -> None:
    memory = "peak GPU MiB" if result["device"].startswith(("NVIDIA", "AMD")) else "peak RSS MiB"
    click.echo(f"\n{result['device']}; torch {result['torch']}, transformers {result['transformers']}, "
               f"sentence-transformers {result['sentence_transformers']}; data {result['data']} "
               f"({result['pairs']} pairs); {result['steps']} steps, first {result['warmup']} dropped, "
               f"median of {result['repeats']} alternating runs; TF32 matmul {result['tf32_matmul']}\n")
    click.echo("| model | batch | precision | ST ms/step | embedder ms/step | speed-up | ST pairs/s | embedder pairs/s "
               f"| real tokens/step | ST computed | embedder GEMM | ST {memory} | embedder {memory} "
               "| ST end-to-end s | embedder end-to-end s |")
    click.echo("|" + "---|" * 15)
    for r in result["train"]:
        t = r["tokens_per_step"]
        click.echo(f"| {r['model']} | {r['batch']} | {r['precision']} | {r['sentence-transformers_step_ms']:.1f} "
                   f"| {r['embedder_step_ms']:.1f} | {r['speedup']:.2f}x | {r['sentence-transformers_pairs_per_s']:.0f} "
                   f"| {r['embedder_pairs_per_s']:.0f} | {t['real']:.0f} | {t['st_computed']:.0f} "
                   f"| {t['embedder_gemm']:.0f} | {r['sentence-transformers_peak_mb']:.0f} | {r['embedder_peak_mb']:.0f} "
                   f"| {r['sentence-transformers_end_to_end_s']:.1f} | {r['embedder_end_to_end_s']:.1f} |")
    click.echo(f"\n| model | encode batch | precision | ST texts/s | embedder texts/s | same precision | vs ST fp32 "
               f"| ST {memory} | embedder {memory} |\n|" + "---|" * 9)
    for r in result["encode"]:
        click.echo(f"| {r['model']} | {r['batch']} | {r['precision']} | {r['sentence-transformers_texts_per_s']:.0f} "
                   f"| {r['embedder_texts_per_s']:.0f} | {r['speedup_same_precision']:.2f}x "
                   f"| {r['speedup_vs_st_fp32']:.2f}x | {r['sentence-transformers_peak_mb']:.0f} "
                   f"| {r['embedder_peak_mb']:.0f} |")


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1)
def worker(args):
    """Internal: one measurement (run by `run` in a subprocess)."""
    task, system, model_dir, data, max_pairs = args[:5]
    pairs = load_pairs(data, int(max_pairs) or None)
    if task == "train":
        batch_size, precision, steps, warmup, dims, device = args[5:]
        dims = [] if dims == "none" else [int(d) for d in dims.split(",")]
        with tempfile.TemporaryDirectory() as out_dir:
            figures = train_worker(system, model_dir, pairs, int(batch_size), precision, int(steps), int(warmup),
                                   dims, device, out_dir)
    else:
        batch_size, precision, device = args[5:]
        texts = sorted({t for pair in pairs for t in pair})
        figures = encode_worker(system, model_dir, texts, int(batch_size), precision, device)
    print(json.dumps(figures))


if __name__ == "__main__":
    cli()
