"""Quality across domains: embedder's defaults against sentence-transformers' trainer with the seeds' recipe, per
data set and seed, scored on each set's test split (reported, never used to choose a default).

    python benchmarks/quality_sets.py run --system base --base all-MiniLM-L6-v2
    python benchmarks/quality_sets.py run --system st --base all-MiniLM-L6-v2 --seeds 42,1
    python benchmarks/quality_sets.py run --system embedder --base all-MiniLM-L6-v2 --seeds 42,1 [--flags "..."]
    python benchmarks/quality_sets.py table --base all-MiniLM-L6-v2
    python benchmarks/quality_sets.py st-step-time --base all-mpnet-base-v2 --set nutrition

Sets: aipolicy, nutrition, econpapers (../shared/data/<set>/train.json -> test.json) and the embedded stdlib data
(stdlib:train -> stdlib:test). `--system embedder` runs `python train.py --base B --train <train> --seed S
--output <tmp>` in a fresh process with nothing else (plus --flags, to measure a lever); `--mine "FLAGS"` first
mines hard negatives with the base model (`python -m embedder mine --model B --data <train> FLAGS`) and trains on
the mined rows. `--system st` runs ST's trainer (benchmarks/st_trainer.py) with the seeds' recipe: MNRL scale 20
(inside MatryoshkaLoss over the seeds' dims for 768-wide models), batch 16 (all-MiniLM-L6-v2) or 20, lr 5e-5,
linear decay, no warmup, 5 epochs, fp32, its default random batches. Every model is scored the same way: ST's
InformationRetrievalEvaluator (cosine, fp32) on the set's test split; for the three non-code sets on stdlib:test
(the forgetting check's general set); on aipolicy also on its val split (the one set with a val split: defaults
are chosen on it and on the validation slices runs hold out). Each run appends one JSON line to
benchmarks/results/quality-<base>.jsonl; `table` prints the means per set and label. Never run as a test. The wall
times are the whole run (training, evaluation, scoring) on whatever else the machine was running: not speed figures.
"""

import json
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
DATA = REPO.parent / "shared" / "data"
SETS = ("aipolicy", "nutrition", "econpapers", "stdlib")
SEED_DIMS = {768: [768, 512, 256, 128, 64]}
SEED_EPOCHS = 5


def train_spec(name: str) -> str:
    return "stdlib:train" if name == "stdlib" else str(DATA / name / "train.json")


def test_sets(name: str) -> dict:
    """{"test": IRDataset, "general": IRDataset (non-code sets only), "val": IRDataset (aipolicy only)}."""
    from embedder.data.specs import load_eval_set
    sets = {"test": load_eval_set("stdlib:test" if name == "stdlib" else str(DATA / name / "test.json"))}
    if name != "stdlib":
        sets["general"] = load_eval_set("stdlib:test")
    if (DATA / name / "val.json").is_file():  # aipolicy's val split: where defaults are chosen, never on test
        sets["val"] = load_eval_set(str(DATA / name / "val.json"))
    return sets


def score(model, name: str) -> dict:
    from sentence_transformers.evaluation import InformationRetrievalEvaluator
    row = {}
    for split, ir in test_sets(name).items():
        relevant = {q: set(v) for q, v in ir.relevant.items()}
        metrics = InformationRetrievalEvaluator(ir.queries, ir.corpus, relevant, batch_size=32)(model)
        row[f"{split}_map@100"] = round(metrics["cosine_map@100"], 4)
        row[f"{split}_ndcg@10"] = round(metrics["cosine_ndcg@10"], 4)
    return row


def train_pairs(name: str) -> list[tuple[str, str]]:
    """A set's (anchor, positive) training pairs, as ST's trainer takes them."""
    from embedder.data.specs import load_train
    return [(r[0], r[1]) for r in load_train(train_spec(name)).rows]


def seed_batch_and_dims(model) -> tuple[int, list[int]]:
    """The seeds' batch size and Matryoshka dims for an ST model: 16 and plain MNRL for the 384-wide MiniLM, 20 and
    768…64 for 768-wide models."""
    width = model.get_sentence_embedding_dimension()
    return 16 if width == 384 else 20, SEED_DIMS.get(width, [])


def results_path(base: str) -> Path:
    return REPO / "benchmarks" / "results" / f"quality-{Path(base).name}.jsonl"


def record(base: str, row: dict) -> None:
    """Print a run's row and append it to the base's results file."""
    print(json.dumps(row), flush=True)
    with results_path(base).open("a") as out:
        out.write(json.dumps(row) + "\n")


@click.group()
def cli():
    pass


@cli.command()
@click.option("--system", type=click.Choice(["st", "embedder", "base"]), required=True)
@click.option("--base", default="all-MiniLM-L6-v2")
@click.option("--sets", default=",".join(SETS))
@click.option("--seeds", default="42,1")
@click.option("--flags", default="", help="embedder only: extra train.py flags (a lever being measured)")
@click.option("--mine", default="", help="embedder only: mine hard negatives first with these `python -m embedder "
              "mine` flags, and train on the mined rows")
@click.option("--label", default=None, help="the row's name in the table (default: the system, or its flags)")
def run(system, base, sets, seeds, flags, mine, label):
    import torch
    from sentence_transformers import SentenceTransformer

    from embedder.model import locate
    from embedder.train.console import device_name
    from st_trainer import st_trainer
    folder = str(locate.model_folder(base))
    machine = device_name(torch.device("cpu"))
    for name in sets.split(","):
        for seed in ([0] if system == "base" else [int(s) for s in seeds.split(",")]):
            started, chosen = time.time(), {}
            with tempfile.TemporaryDirectory() as tmp:
                if system == "base":
                    model = SentenceTransformer(folder, device="cpu")
                elif system == "st":
                    model = SentenceTransformer(folder, device="cpu")
                    trainer = st_trainer(model, train_pairs(name), tmp, *seed_batch_and_dims(model),
                                         epochs=SEED_EPOCHS, seed=seed)
                    trainer.train()
                else:
                    train = train_spec(name)
                    if mine:  # the lever: hard negatives mined by the base model first (its time counted)
                        subprocess.run([sys.executable, "-m", "embedder", "mine", "--model", base, "--data", train,
                                        "--out", f"{tmp}/mined.jsonl", *shlex.split(mine)], check=True,
                                       capture_output=True, cwd=REPO)
                        train = f"{tmp}/mined.jsonl"
                    command = [sys.executable, str(REPO / "train.py"), "--base", base, "--train", train,
                               "--seed", str(seed), "--output", f"{tmp}/model", *shlex.split(flags)]
                    done = subprocess.run(command, capture_output=True, text=True)
                    if done.returncode:
                        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
                    model = SentenceTransformer(f"{tmp}/model", device="cpu")
                    kept = re.search(r"saved the (?:model of step (\d+)|soup of \d+ members"
                                     r"|average of the weights at \d+ epoch ends)"
                                     r"(?:, merged with the base at w = ([\d.]+))?", done.stdout)
                    chosen = {"step": int(kept[1]) if kept[1] else None, "merge": float(kept[2] or 1)} if kept else {}
                    members = json.loads(Path(f"{tmp}/model/train_config.json").read_text()).get("soup_members")
                    if members:  # each member's chosen step and steps trained
                        chosen["member_steps"] = [[m["step"], m["steps"]] for m in members]
                seconds = time.time() - started
                row = {"system": system, "label": label or (" ".join(filter(None, [flags, mine and f"mine {mine}"])) if system == "embedder"
                                          and (flags or mine) else system),
                       "base": base, "set": name, "seed": seed, "seconds": round(seconds, 1), "machine": machine,
                       **chosen, **score(model, name)}
            record(base, row)


@cli.command("st-step-time")
@click.option("--base", default="all-mpnet-base-v2")
@click.option("--set", "name", default="nutrition", type=click.Choice(SETS))
@click.option("--steps", default=4, help="steps to time; the first (warm-up) is left out of the median")
def st_step_time(base, name, steps):
    """How long ST's run with the seeds' recipe would take on a set, from the median of its first steps."""
    from sentence_transformers import SentenceTransformer
    from transformers import TrainerCallback

    from embedder.model import locate
    from st_trainer import st_trainer
    model = SentenceTransformer(str(locate.model_folder(base)), device="cpu")
    pairs = train_pairs(name)
    (batch, dims), ends = seed_batch_and_dims(model), []

    class StepEnds(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            ends.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as tmp:
        st_trainer(model, pairs, tmp, batch, dims, max_steps=steps, epochs=SEED_EPOCHS, callbacks=[StepEnds()]).train()
    step = statistics.median(b - a for a, b in zip(ends, ends[1:]))
    total = SEED_EPOCHS * -(-len(pairs) // batch)
    print(f"{base} on {name}: {len(pairs)} pairs, batch {batch}; ST's step {step:.1f} s (median of steps 2-{steps}); "
          f"{SEED_EPOCHS} epochs = {total} steps = {total * step / 3600:.1f} h of training")


@cli.command()
@click.option("--base", default="all-MiniLM-L6-v2")
@click.option("--reference", default="st")
@click.option("--label", "only", multiple=True, help="only these columns (default: every label)")
def table(base, reference, only):
    rows = [json.loads(line) for line in results_path(base).read_text().splitlines() if line.strip()]
    labels = list(only) or list(dict.fromkeys(r["label"] for r in rows if r["system"] != "base"))
    mean = lambda rs, k: statistics.mean(r[k] for r in rs) if rs else float("nan")  # noqa: E731
    print(f"{base}: test cosine_map@100, mean over [n] seeds; general = stdlib:test, val = aipolicy's val split; "
          "mean wall time per run\n")
    print("| set | base | " + " | ".join(labels) + " |")
    print("|---|---|" + "---|" * len(labels))
    deltas = {label: [] for label in labels}
    for name in SETS:
        base_rows = [r for r in rows if r["system"] == "base" and r["set"] == name]
        ref = mean([r for r in rows if r["label"] == reference and r["set"] == name], "test_map@100")
        cells = []
        for label in labels:
            these = [r for r in rows if r["label"] == label and r["set"] == name]
            if not these:
                cells.append("-")
                continue
            value = mean(these, "test_map@100")
            general = f", general {mean(these, 'general_map@100'):.3f}" if "general_map@100" in these[0] else ""
            val = f", val {mean(these, 'val_map@100'):.3f}" if all("val_map@100" in r for r in these) else ""
            delta = "" if label == reference or ref != ref else f" ({value - ref:+.3f})"
            if ref == ref:  # a reference to compare with (not NaN)
                deltas[label].append(value - ref)
            cells.append(f"{value:.4f}{delta} [{len(these)}]{general}{val}, {mean(these, 'seconds'):.0f} s")
        base_cell = f"{mean(base_rows, 'test_map@100'):.4f}" if base_rows else "-"
        if base_rows and "general_map@100" in base_rows[0]:
            base_cell += f", general {mean(base_rows, 'general_map@100'):.3f}"
        print(f"| {name} | {base_cell} | " + " | ".join(cells) + " |")
    print("| mean − " + reference + " | | " + " | ".join(
        f"{statistics.mean(d):+.4f} over {len(d)} sets" if d and label != reference else "" for label, d in deltas.items())
        + " |")


if __name__ == "__main__":
    cli()
