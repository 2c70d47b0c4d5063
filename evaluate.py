"""Evaluate embedding models on IR data sets with sentence-transformers' 30 retrieval metrics.

    python evaluate.py                                   # the default base model on the default data's test split
    python evaluate.py --model all-MiniLM-L6-v2 --model out/my-model --data test.json --dims 128,64 --json out.json

This file is the command line only (click options -> embedder.eval.run.evaluate). Models print side by side
(columns), metrics as rows, the best value of each row marked with *. A user mistake is one line, exit code 2.
"""

from __future__ import annotations

import click

from embedder.cli import parse_numbers
from embedder.data.formats import MAX_SKIPPED_SHARE
from embedder.errors import UserError, one_line_errors
from embedder.eval.run import DEFAULT_MODEL, evaluate
from embedder.model.precision import PRECISIONS


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--model", "models", multiple=True, help=f"model name or folder; repeat to compare (default {DEFAULT_MODEL})")
@click.option("--data", multiple=True, help="IR JSON file, or stdlib[:split] for the embedded default data "
                                             "(default stdlib:test); repeatable")
@click.option("--dims", default=None, help="comma list of Matryoshka truncations to score too, e.g. 256,128,64")
@click.option("--json", "json_out", default=None, help="write {model: {metric: value}} to this file")
@click.option("--batch-size", default=32, show_default=True, type=int)
@click.option("--precision", default="fp32", show_default=True, type=click.Choice(PRECISIONS),
              help="fp32: ST's numbers exactly; auto: bf16 where the CPU/GPU computes it natively (faster, "
                   "metrics may differ in the 3rd decimal); bf16/fp16: autocast")
@click.option("--per-query", "per_query_out", default=None,
              help="write each query's rank of its first relevant passage to this JSONL file")
@click.option("--compare", default=None, metavar="BASE_MODEL",
              help="also score BASE_MODEL and list, per query, what each --model improved and worsened against it")
@click.option("--max-skipped-share", default=MAX_SKIPPED_SHARE, show_default=True, type=float,
              help="refuse a data file when more than this share of its records have an empty text")
@click.option("--device", default=None, help="cpu, cuda, cuda:1… (default: cuda when available)")
def main(models, data, dims, json_out, batch_size, precision, per_query_out, device, compare, max_skipped_share):
    """Score models on IR data with ST's accuracy/precision/recall@1,3,5,10, ndcg@10, mrr@10, map@100."""
    with one_line_errors():
        if not 0 <= max_skipped_share <= 1:
            raise UserError(f"--max-skipped-share {max_skipped_share}: give a share in [0, 1]")
        evaluate(models, data, parse_numbers(dims, "--dims") if dims else (), json_out, batch_size, precision,
                 per_query_out, device, compare, max_skipped_share)


if __name__ == "__main__":
    main()
