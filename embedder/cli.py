"""The command lines besides train.py and evaluate.py, as one click group, and the flag parsers every command
shares.

    python -m embedder mine --data train.json --out pairs.jsonl      # hard negatives (embedder/data/mining.py)
    python -m embedder merge MODEL_A MODEL_B --weight 0.7 --output DIR   # w · A + (1 − w) · B (train/forgetting.py)
    python -m embedder data stdlib --out DIR                         # the embedded data set as IR JSON files
    python -m embedder export MODEL_FOLDER --onnx --int8 [--openvino]   # ONNX files into the folder

`python -m embedder.mine`, `python -m embedder.merge` and `python -m embedder.data` are the same commands. A user
mistake is one line on stderr and exit code 2 (embedder/errors.py).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import click

from .data.formats import skipped_line
from .data.mining import describe, mine as mine_negatives, write_rows
from .data.specs import is_default_spec, load_eval_set
from .data.stdlib import SPLIT_SIZES, stdlib_dataset
from .errors import UserError, one_line_errors
from .eval.deploy import export_with_report
from .files import check_output, replace_parts
from .model import onnx_export, st_format
from .model.embedder import load
from .train.forgetting import merge_states

CONTEXT = {"help_option_names": ["-h", "--help"]}


def parse_numbers(text: str, flag: str, kind: type = int) -> tuple:
    """A comma list of positive numbers (`kind`: int or float); UserError naming the flag."""
    noun = "whole numbers" if kind is int else "numbers"
    try:
        numbers = tuple(kind(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise UserError(f"{flag} {text!r}: give a comma list of positive {noun}, e.g. {flag} "
                        f"{'256,128,64' if kind is int else '1,1,1,1,2'}") from None
    if not numbers or any(not n > 0 for n in numbers):
        raise UserError(f"{flag} {text!r}: give positive {noun} only")
    return numbers


def parse_dims(text: str) -> tuple[int, ...] | None | str:
    """--matryoshka-dims: 'auto' (or empty), 'none', or a comma list."""
    if text in ("auto", ""):
        return "auto"
    return None if text.lower() == "none" else parse_numbers(text, "--matryoshka-dims")


def parse_weights(text: str | None) -> tuple[float, ...] | None:
    """--matryoshka-weights: empty (all 1), or a comma list."""
    return parse_numbers(text, "--matryoshka-weights", float) if text else None


def parse_directions(text: str) -> tuple[str, ...]:
    """--directions: a comma list of loss terms (TrainConfig checks the names)."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def parse_exports(text: str) -> tuple[str, ...]:
    """--export: a comma list (TrainConfig checks the names); int8 and openvino imply onnx."""
    kinds = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    return ("onnx", *(k for k in kinds if k != "onnx")) if kinds else ()


def parse_merge(text: str) -> str | float:
    """--merge: auto, off, or a weight."""
    if text in ("auto", "off"):
        return text
    try:
        return float(text)
    except ValueError:
        raise UserError(f"--merge {text!r}: give auto, off or a weight like 0.7") from None


@click.group(context_settings=CONTEXT)
def main():
    """embedder's utilities: mine hard negatives, merge two models, write the embedded data set."""


@main.command(context_settings=CONTEXT)
@click.option("--model", default="all-MiniLM-L6-v2", show_default=True, help="model that retrieves")
@click.option("--data", required=True, help="IR JSON (questions, corpus, relevant_contexts), or stdlib[:split]")
@click.option("--out", required=True, help="JSONL file to write: anchor, positive, negative_1…")
@click.option("--num-negatives", default=1, show_default=True, type=int)
@click.option("--range-min", default=0, show_default=True, type=int, help="skip this many best-ranked passages")
@click.option("--range-max", default=100, show_default=True, type=int, help="look this deep past range-min")
@click.option("--margin", default=0.0, show_default=True, type=float,
              help="skip candidates scoring above cos(q, positive) - margin")
@click.option("--batch-size", default=32, show_default=True, type=int)
@click.option("--device", default=None)
def mine(model, data, out, num_negatives, range_min, range_max, margin, batch_size, device):
    """Mine hard negatives for training pairs."""
    with one_line_errors():
        for flag, value in (("--num-negatives", num_negatives), ("--range-max", range_max), ("--batch-size", batch_size)):
            if value < 1:
                raise UserError(f"{flag} {value}: must be at least 1")
        if range_min < 0:
            raise UserError(f"--range-min {range_min}: must be 0 or more")
        if not math.isfinite(margin):
            raise UserError(f"--margin {margin}: give a finite number (0.05 is usual)")
        inputs = [] if is_default_spec(data) else [("--data", data)]
        inputs += [("--model", model)] if os.path.exists(os.path.expanduser(model)) else []
        check_output(out, "--out", inputs, is_file=True)
        ir = load_eval_set(data)
        warning = skipped_line(ir, flag=None)
        if warning:
            click.echo(warning, err=True)
        rows, stats = mine_negatives(load(model, device=device), ir.queries, ir.corpus, ir.relevant, num_negatives,
                           range_min, range_max, margin, batch_size)
        if not rows:
            raise UserError(f"no pair found {num_negatives} negatives; lower --range-min or --margin")
        write_rows(Path(out), rows)
        click.echo(describe(stats))
        click.echo(f"wrote {len(rows)} rows to {out}")


@main.command(context_settings=CONTEXT)
@click.argument("model_a")
@click.argument("model_b")
@click.option("--weight", required=True, type=float, help="w in w · A + (1 − w) · B, from 0 to 1")
@click.option("--output", required=True, help="folder for the merged model (A's pooling, prompts, tokenizer)")
def merge(model_a, model_b, weight, output):
    """Merge two models of one architecture: w · MODEL_A + (1 − w) · MODEL_B, saved as a sentence-transformers
    folder."""
    with one_line_errors():
        if not 0 <= weight <= 1:
            raise UserError(f"--weight {weight}: give a number from 0 to 1")
        inputs = [(flag, name) for flag, name in (("MODEL_A", model_a), ("MODEL_B", model_b)) if Path(name).exists()]
        check_output(output, "--output", inputs)
        if Path(output).exists() and any(Path(output).iterdir()):
            raise UserError(f"--output {output} already holds files; choose a new folder")
        a, b = load(model_a, device="cpu"), load(model_b, device="cpu")
        if a.hf_config.get("model_type") != b.hf_config.get("model_type"):
            raise UserError(f"MODEL_A is {a.hf_config.get('model_type')} and MODEL_B is {b.hf_config.get('model_type')}"
                            "; merge two models of the same architecture")
        a.load_state_dict(merge_states(a.state_dict(), b.state_dict(), weight, (model_a, model_b)))
        a.passthrough = merge_states(a.passthrough, b.passthrough, weight, (model_a, model_b))  # unused tensors
        a.save(output)
        print(f"saved {weight:g} · {model_a} + {1 - weight:g} · {model_b} to {output}")


@main.command(context_settings=CONTEXT)
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--onnx", "onnx", is_flag=True, help="onnx/model.onnx (ST's backend) and onnx/sentence_embedding.onnx "
              "(the whole model, pooling and Normalize inside)")
@click.option("--int8", is_flag=True, help="also dynamic int8 (onnx/model_qint8_TARGET.onnx …), its fidelity measured")
@click.option("--int8-target", type=click.Choice(onnx_export.INT8_TARGETS), default=None,
              help="the CPU the int8 files are for, as ST names them  [default: this CPU's]")
@click.option("--openvino", is_flag=True, help="also OpenVINO IR (openvino/openvino_model.xml), fp32")
@click.option("--dims", default="auto", show_default=True, help="Matryoshka outputs of the sentence graph: auto "
              "(the dims in the folder's train_config.json), none, or a comma list")
@click.option("--eval", "eval_spec", default="stdlib:val", show_default=True,
              help="IR set on which int8 is measured against fp32 (your validation set)")
def export(folder, onnx, int8, int8_target, openvino, dims, eval_spec):
    """Write ONNX (and OpenVINO) files into a saved model FOLDER, in sentence-transformers' layout. The folder
    changes only when every file is written: a failed export leaves it as it was."""
    with one_line_errors():
        path = Path(folder)
        if not st_format.is_model_folder(path):
            raise UserError(f"FOLDER {folder} holds no model (no modules.json or config.json); give a model folder")
        if not (onnx or int8 or openvino):
            raise UserError("name what to export: --onnx, --int8 or --openvino")
        kinds = ("onnx",) + (("int8",) if int8 else ()) + (("openvino",) if openvino else ())
        onnx_export.require_extras(kinds)
        chosen = parse_dims(dims)
        if chosen == "auto":
            config = path / "train_config.json"
            chosen = tuple(json.loads(config.read_text(encoding="utf-8")).get("resolved", {}).get("dims") or ()) \
                if config.is_file() else ()
        ir = load_eval_set(eval_spec) if int8 else None
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.export-", dir=path.parent))
        try:
            export_with_report(path, staging, kinds, tuple(chosen or ()), int8_target or onnx_export.host_int8_target(),
                               ir, eval_spec, click.echo)
            replace_parts(staging, path, [onnx_export.ONNX_FOLDER, onnx_export.OPENVINO_FOLDER, "README.md"])
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        click.echo(f"wrote them into {folder}")


@main.group(context_settings=CONTEXT)
def data():
    """Data-set utilities."""


@data.command("stdlib", context_settings=CONTEXT)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="folder for train/val/test.json")
def write_stdlib(out):
    """Write the embedded default data set as IR JSON files."""
    folder = Path(out)
    existing = [name for name in SPLIT_SIZES if (folder / f"{name}.json").exists()]
    if existing:
        click.echo(f"error: --out {folder} already holds {existing[0]}.json; choose an empty folder", err=True)
        raise SystemExit(2)
    folder.mkdir(parents=True, exist_ok=True)
    for split, ir in stdlib_dataset().items():
        (folder / f"{split}.json").write_text(json.dumps(ir.to_json(), indent=1, ensure_ascii=False), encoding="utf-8")
        print(f"{folder / (split + '.json')}: {len(ir.queries)} queries, {len(ir.corpus)} passages")


__all__ = ["main", "parse_dims", "parse_exports", "parse_merge", "parse_numbers", "parse_weights"]
