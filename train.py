"""Fine-tune an embedding model with in-batch negatives (MNRL) and Matryoshka, the seeds' recipe.

    python train.py --base all-mpnet-base-v2                       # the embedded default data (stdlib code search)
    python train.py --base all-MiniLM-L6-v2 --train train.json --eval val.json --epochs 1 --batch-size 16 \
        --matryoshka-dims none --output out/minilm-aipolicy

This file is the command line only: click options (defaults: TrainConfig's) -> TrainConfig ->
embedder.train.run.train, which writes an ST folder at --output with README.md (model card) and
training_log.jsonl. User mistakes end with one line on stderr
each and exit code 2, before anything is written; a stopped run says where its work is and exits non-zero.
"""

from __future__ import annotations

import sys

import click

from embedder.cli import parse_dims, parse_directions, parse_exports, parse_merge, parse_weights
from embedder.errors import UserError, error_lines
from embedder.model.precision import PRECISIONS
from embedder.train.config import TrainConfig
from embedder.train.losses import PARTITION_MODES
from embedder.train.run import train as run
from embedder.train.stop_signals import Interrupted
from embedder.train.trainer import TrainingStopped

DEFAULT = {name: f.default for name, f in TrainConfig.__dataclass_fields__.items()}  # stated once: the config


def option(flag: str, field: str | None = None, **kwargs):
    """A click option whose default is the TrainConfig field's (named after the flag unless given)."""
    field = field or flag.lstrip("-").split("/")[0].replace("-", "_")
    default = DEFAULT[field]
    return click.option(flag, field, default=",".join(map(str, default)) if isinstance(default, tuple) else default,
                        show_default=default is not None, **kwargs)


def repeated(values: tuple[str, ...]) -> tuple[str, ...] | None:
    """A repeatable data flag: None when not given (TrainConfig derives the default), () for 'none'."""
    return None if not values else () if values == ("none",) else tuple(values)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@option("--base", help="base model: name or folder")
@click.option("--train", "train", multiple=True, help="training data: IR JSON/JSONL, pair CSV/TSV/JSONL, "
              "FlagEmbedding JSONL; repeat to train on several round-robin (default: the embedded stdlib data)")
@click.option("--eval", "eval", multiple=True, help="IR JSON validation set(s), or 'none' "
              "(default: the embedded data's val split when --train is not given)")
@option("--validation-split", type=float, help="without --eval: this share of the training pairs is held out, by "
        "passage, to pick the best checkpoint and the merge; 0 trains on every pair  [default: 0.1]")
@click.option("--eval-general", "eval_general", multiple=True, help="IR JSON set(s) of general retrieval for the "
              "forgetting check, or 'none' (default: the embedded data's test split when training on your data)")
@option("--max-general-drop", type=float, help="warn when the general sets' cosine_map@100 drops more than this")
@option("--max-skipped-share", type=float, help="refuse a data file when more than this share of its records "
        "have an empty text (they are skipped otherwise, with a warning)")
@option("--merge", help="merge the trained weights with the base: auto (w searched on 0.5…1.0), off, or w")
@click.option("--output", default=None, help="folder for the fine-tuned model (default output/<base>-finetuned)")
@option("--report-to", type=click.Choice(["none", "tensorboard", "trackio"]), help="also write the log (loss, lr, "
        "gradient norm, skipped steps, every evaluation metric) as TensorBoard events, watched live under "
        "<output>.checkpoints/runs and kept in <output>/runs, or to trackio's local database (trackio show)  "
        "[needs: pip install tensorboard, or trackio]")
@option("--export", help="also write, into the output: onnx (onnx/model.onnx for ST's backend, "
        "onnx/sentence_embedding.onnx with pooling inside), int8 (dynamic int8 of both, measured on the validation "
        "set), openvino; a comma list, e.g. onnx,int8  [needs: pip install 'embedder[onnx]']")
@option("--epochs", type=int)
@option("--max-steps", type=int, help="stop after this many optimiser steps")
@option("--batch-size", type=int)
@option("--lr", type=float)
@option("--warmup-ratio", type=float)
@option("--weight-decay", type=float)
@option("--max-grad-norm", type=float)
@option("--seed", type=int)
@option("--soup", type=int, help="train this many runs (seeds seed, seed+1000, …; the same data and validation) and "
        "save the uniform average of their chosen weights, a model soup; 1: one run")
@option("--patience", type=int, help="stop a run after this many evaluations without a better --select-metric, "
        "once a trained step is the best (default: never)")
@option("--average-epochs/--no-average-epochs", help="save the uniform average of the weights at every epoch end "
        "instead of the best checkpoint")
@option("--scale", type=float, help="MNRL scale = 1 / temperature")
@option("--matryoshka-dims", help="comma list, 'auto' (768,512,256,128,64 for models 768 wide or more, plain MNRL "
        "for narrower ones, as the seeds trained) or 'none' for plain MNRL")
@option("--matryoshka-weights", help="comma list, one weight per --matryoshka-dims entry in the same order "
        "(default: all 1)")
@option("--precision", type=click.Choice(PRECISIONS))
@option("--max-seq-length", type=int, help="override the model's max_seq_length")
@option("--eval-steps", type=int, help="evaluate every N steps (and each epoch end)")
@option("--save-steps", type=int, help="write a resumable checkpoint every N steps")
@option("--save-total-limit", type=int, help="keep only the newest N checkpoints")
@option("--resume", is_flag=True, help="continue from the newest checkpoint of this --output")
@option("--overwrite", is_flag=True, help="replace an existing --output folder")
@click.option("--no-duplicates/--allow-duplicates", "no_duplicates", default=DEFAULT["sampler"] == "no_duplicates",
              show_default=True, help="batches without repeated texts (default), or ST's plain random batches")
@option("--mask-duplicates", is_flag=True, help="also mask in-batch false negatives inside the loss")
@option("--mask-false-negatives", type=float, metavar="MARGIN",
        help="drop a negative from the loss when its cosine to the query exceeds the positive's by MARGIN (e.g. 0.1)")
@option("--directions", help="comma list of loss terms: query_to_doc (always), doc_to_query (symmetric), "
        "query_to_query, doc_to_doc (all four: GTE's loss), as ST's MNRL")
@option("--partition-mode", type=click.Choice(PARTITION_MODES),
        help="one softmax over every direction's terms, or one per direction, averaged")
@option("--query-prompt", help="prefix for queries, in training, evaluation and the saved model (default: the base "
        "model's saved 'query' prompt, if any; '' for none)")
@option("--passage-prompt", help="prefix for passages, likewise (default: the base's 'document' or 'passage' prompt)")
@option("--select-metric", help="validation metric that picks the best checkpoint (default cosine_map@100)")
@click.option("--keep-last", is_flag=True, default=not DEFAULT["keep_best"],
              help="save the last model instead of the best by --select-metric")
@option("--mini-batch-size", type=int,
        help="GradCache: embed this many texts at a time, so a large --batch-size fits in memory")
@option("--gather-across-devices/--no-gather-across-devices",
        help="under torchrun, use the positives of every process as negatives")
@option("--device", help="cpu, cuda, cuda:1… (default: cuda when available)")
def main(train, eval, eval_general, merge, matryoshka_dims, matryoshka_weights, no_duplicates, keep_last, directions,
         export, **settings):
    """Fine-tune BASE on (question, passage) pairs and save a sentence-transformers folder."""
    try:
        config = TrainConfig(
            train=tuple(train) or DEFAULT["train"], eval=repeated(eval), eval_general=repeated(eval_general),
            merge=parse_merge(merge), matryoshka_dims=parse_dims(matryoshka_dims),
            matryoshka_weights=parse_weights(matryoshka_weights), sampler="no_duplicates" if no_duplicates else "random",
            keep_best=not keep_last, directions=parse_directions(directions), export=parse_exports(export),
            **settings)
        run(config, echo=click.echo)
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
