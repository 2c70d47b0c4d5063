"""Fine-tune an embedding model with in-batch negatives (MNRL) and Matryoshka, the seeds' recipe.

    python train.py --base all-mpnet-base-v2                       # the embedded default data (stdlib code search)
    python train.py --base all-MiniLM-L6-v2 --train train.json --eval val.json --epochs 1 --batch-size 16 \
        --matryoshka-dims none --output out/minilm-aipolicy

This file is the command line only: click options -> TrainConfig -> embedder.recipe.train, which writes an ST
folder at --output with README.md (model card) and training_log.jsonl. User mistakes end with one line on stderr
each and exit code 2, before anything is written; a stopped run says where its work is and exits non-zero.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from embedder.errors import UserError, error_lines
from embedder.recipe import train
from embedder.stop_signals import Interrupted
from embedder.train_config import PRECISIONS, TrainConfig, parse_dims, parse_weights
from embedder.trainer import TrainingStopped


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
        train(config, echo=click.echo)
    except UserError as err:
        click.echo(error_lines(err), err=True)
        sys.exit(err.exit_code)
    except TrainingStopped as err:
        click.echo(f"stopped: {err}", err=True)
        sys.exit(err.exit_code)
    except Interrupted as err:  # while reading the data, before the run had anything to keep
        click.echo(f"stopped: interrupted ({err.signal_name}) before training started; nothing was written", err=True)
        sys.exit(130 if err.signal_name == "SIGINT" else 143)

if __name__ == "__main__":
    main()
