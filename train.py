"""Fine-tune an embedding model with in-batch negatives (MNRL) and Matryoshka, the seeds' recipe.

    python train.py --base all-mpnet-base-v2                       # the embedded default data (stdlib code search)
    python train.py --base all-MiniLM-L6-v2 --train train.json --eval val.json --epochs 1 --batch-size 16 \
        --matryoshka-dims none --output out/minilm-aipolicy

Reads: click options -> TrainConfig -> data and model -> Trainer -> an ST folder at --output with README.md (model
card) and training_log.jsonl. User mistakes end with one line on stderr and exit code 2, before anything is written.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import click

from embedder.errors import UserError
from embedder.st_format import check_writable
from embedder.trainer import PRECISIONS, TrainConfig, TrainingStopped

SEED_DIMS = (768, 512, 256, 128, 64)


def default_dims(width: int) -> tuple[int, ...]:
    """The seeds' nested dims for the model's width: 768,512,256,128,64 or 384,256,128,64."""
    return (width,) + tuple(d for d in SEED_DIMS if d < width)


def parse_dims(text: str) -> tuple[int, ...] | None | str:
    if text in ("auto", ""):
        return "auto"
    if text.lower() == "none":
        return None
    try:
        dims = tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise UserError(f"--matryoshka-dims {text!r}: give a comma list like 768,512,256,128,64, or none") from None
    if not dims or any(d <= 0 for d in dims):
        raise UserError(f"--matryoshka-dims {text!r}: dimensions must be positive integers")
    return dims


def parse_weights(text: str | None) -> tuple[float, ...] | None:
    if not text:
        return None
    try:
        weights = tuple(float(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise UserError(f"--matryoshka-weights {text!r}: give a comma list of numbers like 1,1,1,1,2") from None
    if not weights or any(not w > 0 for w in weights):
        raise UserError(f"--matryoshka-weights {text!r}: weights must be positive numbers")
    return weights


def check_numbers(config: TrainConfig) -> None:
    for flag, value, ok in (("--batch-size", config.batch_size, config.batch_size >= 1),
                            ("--epochs", config.epochs, config.epochs >= 1),
                            ("--lr", config.lr, config.lr > 0),
                            ("--scale", config.scale, config.scale > 0),
                            ("--max-grad-norm", config.max_grad_norm, config.max_grad_norm > 0),
                            ("--warmup-ratio", config.warmup_ratio, 0 <= config.warmup_ratio < 1),
                            ("--max-steps", config.max_steps, config.max_steps is None or config.max_steps >= 1),
                            ("--eval-steps", config.eval_steps, config.eval_steps is None or config.eval_steps >= 1),
                            ("--save-steps", config.save_steps, config.save_steps is None or config.save_steps >= 1),
                            ("--mini-batch-size", config.mini_batch_size,
                             config.mini_batch_size is None or config.mini_batch_size >= 1),
                            ("--max-seq-length", config.max_seq_length,
                             config.max_seq_length is None or config.max_seq_length >= 2)):
        if not ok:
            raise UserError(f"{flag} {value}: out of range; see python train.py --help")


def check_output(config: TrainConfig) -> None:
    out = Path(config.output)
    if out.exists() and not out.is_dir():
        raise UserError(f"--output {out} is a file; give a folder path")
    if out.is_dir() and any(out.iterdir()) and not config.overwrite:
        holds = "a model" if (out / "modules.json").is_file() or (out / "config.json").is_file() else "files"
        raise UserError(f"--output {out} already holds {holds}; pass --overwrite to replace it or choose another folder")
    check_writable(out, "--output")
    if config.resume and not any(config.checkpoint_dir.glob("step-*/trainer_state.json")):
        raise UserError(f"--resume: no checkpoint in {config.checkpoint_dir}; start without --resume")


def load_train(spec: str):
    from embedder import data
    if spec == data.DEFAULT_DATA or spec.startswith(data.DEFAULT_DATA + ":"):
        split = spec.partition(":")[2] or "train"
        return data.ir_to_pairs(data.load_eval_set(f"{data.DEFAULT_DATA}:{split}"))
    return data.load_training_file(spec)


def train(config: TrainConfig, echo=click.echo, step_hook=None) -> dict:
    """The whole run; returns {'base': metrics, 'final': metrics, 'output': path}. step_hook(step), if given, is
    called after every optimiser step (benchmarks time the steps with it)."""
    check_numbers(config)
    check_output(config)
    from embedder import data
    train_pairs = [load_train(spec) for spec in config.train]
    columns = {len(p.columns) for p in train_pairs}
    if len(columns) > 1:
        raise UserError(f"--train files have different column counts ({sorted(columns)}); give every file the same columns")
    for pairs in train_pairs:
        if len(pairs.rows) < config.batch_size:
            raise UserError(f"{pairs.source}: {len(pairs.rows)} pairs, fewer than one batch of {config.batch_size}; "
                            "lower --batch-size or add data")
    eval_sets = [(spec, data.load_eval_set(spec)) for spec in config.eval]

    from embedder import distributed
    context, device = distributed.setup(config.device)
    try:
        return _train(config, train_pairs, eval_sets, context, device, echo if context.is_main else _quiet, step_hook)
    finally:
        distributed.teardown(context)


def _quiet(*args, **kwargs):
    pass


def _train(config, train_pairs, eval_sets, context, device, echo, step_hook=None) -> dict:
    import torch

    import embedder
    from embedder import batching, data, distributed, model_card
    from embedder.evaluation import InformationRetrievalEvaluator, format_table
    from embedder.report import mean_offdiagonal_cosine, startup_report
    from embedder.trainer import Trainer

    torch.manual_seed(config.seed + context.rank)  # dropout masks differ between processes
    model = embedder.load(config.base, device=device)
    if config.max_seq_length:
        model.tokenizer.max_seq_length = config.max_seq_length
    dims = config.matryoshka_dims
    if dims == "auto":
        dims = default_dims(model.embedding_dimension)
    try:
        from embedder.losses import validate_dims
        if config.matryoshka_weights and not dims:
            raise ValueError("weights were given but Matryoshka is off (--matryoshka-dims none)")
        dims, weights = (tuple(t) for t in validate_dims(dims, model.embedding_dimension,
                                                         config.matryoshka_weights)) if dims else (None, None)
    except ValueError as err:
        raise UserError(f"--matryoshka-dims/--matryoshka-weights: {err}") from None
    config = replace(config, matryoshka_dims=dims, matryoshka_weights=weights)
    if config.query_prompt or config.passage_prompt:
        model.prompts = {"query": config.query_prompt, "document": config.passage_prompt}

    eval_dims = (None, *[d for d in (dims or ()) if d != model.embedding_dimension])
    evaluators = [InformationRetrievalEvaluator(
        ir.queries, ir.corpus, ir.relevant, name=data.set_name(spec) if len(eval_sets) > 1 else "", dims=eval_dims,
        batch_size=config.eval_batch_size, query_prompt=config.query_prompt or None,
        corpus_prompt=config.passage_prompt or None) for spec, ir in eval_sets]
    metric_keys = [k for e in evaluators for k in e.metric_keys()]
    select_metric = config.select_metric or (metric_keys[14] if metric_keys else None)  # cosine_map@100
    if select_metric and select_metric not in metric_keys:
        raise UserError(f"--select-metric {select_metric!r} is not a metric of this run; valid names include "
                        f"{', '.join(metric_keys[:15])}")

    tokenize = model.tokenizer.encode_unpadded
    train_sets = [batching.TokenizedPairs.build(p, tokenize, config.query_prompt, config.passage_prompt)
                  for p in train_pairs]
    log_path = config.checkpoint_dir / "training_log.jsonl"
    trainer = Trainer(model, config, train_sets, evaluators, select_metric, log_path, echo, context)
    for line in startup_report(model, config, train_sets, trainer):
        echo(line)
    if context.enabled:
        echo(f"torchrun: {context.world_size} processes x batch {config.batch_size} = global batch "
             f"{trainer.global_batch}; negatives gathered across devices: {config.gather_across_devices}")

    resumed = config.resume and trainer.resume()
    if not resumed and context.is_main and log_path.exists():
        log_path.unlink()
    started = time.time()
    base_metrics = {}
    if evaluators:
        echo("evaluating the base model…")
        base_metrics = trainer.evaluate() if resumed else trainer.evaluate_and_track()
        if select_metric and base_metrics:
            echo(f"base {select_metric} = {base_metrics[select_metric]:.4f}")

    from tqdm.auto import tqdm
    with tqdm(total=trainer.total_steps, initial=trainer.state.step, desc="training", unit="step",
              disable=None if context.is_main else True) as progress:
        trainer.run(progress, step_hook)
    chosen_step = trainer.finish_weights()
    final_metrics = trainer.evaluate() if evaluators else {}
    model.eval()
    train_seconds = time.time() - started
    if not context.is_main:
        distributed.barrier(context)
        return {"base": {}, "final": {}, "output": config.output}

    from embedder import __version__
    import tokenizers
    import transformers
    card = model_card.render(
        model, {k: v for k, v in asdict(config).items()}, base_name=config.base,
        dataset_sizes={p.source: len(p.rows) for p in train_pairs}, columns=train_pairs[0].columns,
        loss_info={"loss": "MultipleNegativesRankingLoss", "scale": config.scale,
                   **({"matryoshka_dims": list(dims), "matryoshka_weights": list(config.matryoshka_weights),
                       "n_dims_per_step": -1} if dims else {})},
        base_metrics=base_metrics, final_metrics=final_metrics,
        log_rows=[r for r in trainer.log_rows if select_metric in r], select_metric=select_metric,
        versions={"embedder": __version__, "Transformers": transformers.__version__, "PyTorch": torch.__version__,
                  "Tokenizers": tokenizers.__version__})
    model.save(config.output, model_card=card)
    out = Path(config.output)
    if log_path.is_file():
        shutil.copyfile(log_path, out / "training_log.jsonl")
    (out / "train_config.json").write_text(json.dumps(asdict(config), indent=2) + "\n", encoding="utf-8")
    distributed.barrier(context)

    echo(f"\ntrained {trainer.state.step} steps in {train_seconds:.0f} s; saved the model of step {chosen_step} to {out}")
    if final_metrics:
        echo(format_table({"base": base_metrics, "fine-tuned": final_metrics}, list(final_metrics)))
        if select_metric and final_metrics[select_metric] < base_metrics[select_metric]:
            echo(f"\nWARNING: the fine-tuned model is WORSE than the base on {select_metric} "
                 f"({final_metrics[select_metric]:.4f} < {base_metrics[select_metric]:.4f}); "
                 "check the data, lower --lr or train fewer steps", err=True)
        passages = list(eval_sets[0][1].corpus.values())
        collapse = mean_offdiagonal_cosine(model, passages, config.eval_batch_size)
        if collapse > 0.95:
            echo(f"\nWARNING: the embeddings have COLLAPSED (mean cosine between different passages {collapse:.3f}); "
                 "lower --lr or use --precision fp32", err=True)
    return {"base": base_metrics, "final": final_metrics, "output": str(out)}


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--base", default="all-mpnet-base-v2", show_default=True, help="base model: name or folder")
@click.option("--train", "train_files", multiple=True, help="training data: IR JSON/JSONL, pair CSV/TSV/JSONL, "
              "FlagEmbedding JSONL; repeat to train on several round-robin (default: the embedded stdlib data)")
@click.option("--eval", "eval_files", multiple=True, help="IR JSON validation set(s), or 'none' "
              "(default: the embedded data's val split when --train is not given)")
@click.option("--output", default=None, help="folder for the fine-tuned model (default output/<base>-finetuned)")
@click.option("--epochs", default=5, show_default=True, type=int)
@click.option("--max-steps", default=None, type=int, help="stop after this many optimiser steps")
@click.option("--batch-size", default=20, show_default=True, type=int)
@click.option("--lr", default=5e-5, show_default=True, type=float)
@click.option("--warmup-ratio", default=0.0, show_default=True, type=float)
@click.option("--weight-decay", default=0.0, show_default=True, type=float)
@click.option("--max-grad-norm", default=1.0, show_default=True, type=float)
@click.option("--seed", default=42, show_default=True, type=int)
@click.option("--scale", default=20.0, show_default=True, type=float, help="MNRL scale = 1 / temperature")
@click.option("--matryoshka-dims", default="auto", show_default=True,
              help="comma list, 'auto' (768,512,256,128,64 or 384,256,128,64 by width) or 'none' for plain MNRL")
@click.option("--matryoshka-weights", default=None,
              help="comma list, one weight per --matryoshka-dims entry in the same order (default: all 1)")
@click.option("--precision", default="auto", show_default=True, type=click.Choice(PRECISIONS))
@click.option("--max-seq-length", default=None, type=int, help="override the model's max_seq_length")
@click.option("--eval-steps", default=50, show_default=True, type=int, help="evaluate every N steps (and each epoch end)")
@click.option("--save-steps", default=None, type=int, help="write a resumable checkpoint every N steps")
@click.option("--save-total-limit", default=None, type=int, help="keep only the newest N checkpoints")
@click.option("--resume", is_flag=True, help="continue from the newest checkpoint of this --output")
@click.option("--overwrite", is_flag=True, help="replace an existing --output folder")
@click.option("--no-duplicates/--allow-duplicates", default=True, show_default=True,
              help="batches without repeated texts (default), or ST's plain random batches")
@click.option("--mask-duplicates", is_flag=True, help="also mask in-batch false negatives inside the loss")
@click.option("--query-prompt", default="", help="prefix for queries, in training, evaluation and the saved model")
@click.option("--passage-prompt", default="", help="prefix for passages, likewise")
@click.option("--select-metric", default=None, help="validation metric that picks the best checkpoint "
              "(default cosine_map@100)")
@click.option("--keep-last", is_flag=True, help="save the last model instead of the best by --select-metric")
@click.option("--mini-batch-size", default=None, type=int,
              help="GradCache: embed this many texts at a time, so a large --batch-size fits in memory")
@click.option("--gather-across-devices/--no-gather-across-devices", default=True, show_default=True,
              help="under torchrun, use the positives of every process as negatives")
@click.option("--device", default=None, help="cpu, cuda, cuda:1… (default: cuda when available)")
def main(base, train_files, eval_files, output, epochs, max_steps, batch_size, lr, warmup_ratio, weight_decay,
         max_grad_norm, seed, scale, matryoshka_dims, matryoshka_weights, precision, max_seq_length, eval_steps,
         save_steps, save_total_limit, resume, overwrite, no_duplicates, mask_duplicates, query_prompt, passage_prompt,
         select_metric, keep_last, mini_batch_size, gather_across_devices, device):
    """Fine-tune BASE on (question, passage) pairs and save a sentence-transformers folder."""
    try:
        if eval_files == ("none",):
            eval_files = ()
        elif not eval_files:
            eval_files = () if train_files else ("stdlib:val",)
        config = TrainConfig(
            base=base, train=tuple(train_files) or ("stdlib:train",), eval=tuple(eval_files),
            output=output or f"output/{Path(base.rstrip('/')).name}-finetuned", epochs=epochs, max_steps=max_steps,
            batch_size=batch_size, lr=lr, warmup_ratio=warmup_ratio, weight_decay=weight_decay,
            max_grad_norm=max_grad_norm, seed=seed, scale=scale, matryoshka_dims=parse_dims(matryoshka_dims),
            matryoshka_weights=parse_weights(matryoshka_weights),
            precision=precision, max_seq_length=max_seq_length, eval_steps=eval_steps, save_steps=save_steps,
            save_total_limit=save_total_limit, resume=resume, overwrite=overwrite,
            sampler="no_duplicates" if no_duplicates else "random", mask_duplicates=mask_duplicates,
            query_prompt=query_prompt, passage_prompt=passage_prompt, select_metric=select_metric,
            keep_best=not keep_last, device=device, mini_batch_size=mini_batch_size,
            gather_across_devices=gather_across_devices)
        train(config)
    except UserError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)
    except TrainingStopped as err:
        click.echo(f"stopped: {err}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:  # before the training loop (which saves a checkpoint itself): nothing to keep
        click.echo("stopped: interrupted before training started; nothing was written", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
