"""Evaluate embedding models on IR data sets with sentence-transformers' 30 retrieval metrics.

    python evaluate.py                                   # the default base model on the default data's test split
    python evaluate.py --model all-MiniLM-L6-v2 --model out/my-model --data test.json --dims 128,64 --json out.json

Models print side by side (columns), metrics as rows, the best value of each row marked with *.
"""

from __future__ import annotations

import json
import os

import click

from embedder import files as output_paths
from embedder.errors import UserError, one_line_errors
from embedder.files import write_file_atomically

DEFAULT_MODEL = "all-mpnet-base-v2"


def parse_dims(text: str | None) -> list[int]:
    if not text:
        return []
    try:
        dims = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"--dims {text!r}: give a comma list of positive integers, e.g. --dims 256,128,64") from None
    if any(d <= 0 for d in dims):
        raise UserError(f"--dims {text!r}: dimensions must be positive integers")
    return dims


def run(models, data, dims, json_out, batch_size, precision, per_query_out, device, compare=None):
    import embedder
    from embedder.data import specs as datasets
    from embedder.eval import regressions
    from embedder.eval.ir import InformationRetrievalEvaluator, format_table

    if batch_size <= 0:
        raise UserError(f"--batch-size {batch_size}: must be a positive integer")
    dims = parse_dims(dims)
    models = list(models or [DEFAULT_MODEL])
    if compare:  # the base first: every other model is compared with it
        models = [compare] + [m for m in models if m != compare]
    data = list(data) or ["stdlib:test"]
    inputs = [("--data", spec) for spec in data if not datasets.is_default_spec(spec)]
    inputs += [("--model", name) for name in models if os.path.exists(os.path.expanduser(name))]
    outputs = [(flag, path) for flag, path in (("--json", json_out), ("--per-query", per_query_out)) if path]
    for flag, path in outputs:
        output_paths.check_output(path, flag, inputs + [o for o in outputs if o[0] != flag], is_file=True)
    sets = [(datasets.set_name(spec), datasets.load_eval_set(spec)) for spec in data]
    results: dict[str, dict[str, float]] = {}
    per_query_rows = []
    keys: list[str] = []
    ranks: dict[str, dict] = {}  # model -> eval set -> query id -> rank of the first relevant passage
    for name in models:
        model = embedder.load(name, device=device)
        if precision == "auto" or precision == "bf16":
            from embedder.model.precision import resolve
            precision, reason, warning = resolve(precision, model.device)
            print(f"precision {precision} ({reason})" + (f"; WARNING: {warning}" if warning else ""))
        if any(d > model.embedding_dimension for d in dims):
            raise UserError(f"--dims {dims}: {name} has only {model.embedding_dimension} dimensions")
        results[name] = {}
        for set_name, ir in sets:
            evaluator = InformationRetrievalEvaluator(
                ir.queries, ir.corpus, ir.relevant, name=set_name if len(sets) > 1 else "",
                dims=(None, *dims), batch_size=batch_size, compute_precision=precision)
            metrics, per_query = evaluator.evaluate(model)
            ranks.setdefault(name, {})[set_name] = regressions.ranks_of(per_query)
            results[name].update(metrics)
            keys += [k for k in metrics if k not in keys]
            for variant, rows in per_query.items():
                per_query_rows += [dict(row, model=name, data=set_name, variant=variant) for row in rows]
        del model
    sizes = ", ".join(f"{n}: {len(ir.queries)} queries / {len(ir.corpus)} passages" for n, ir in sets)
    print(f"Information retrieval ({sizes}; encoded in {precision})")
    print(format_table(results, keys))
    for name in models[1:] if compare else ():
        for set_name, ir in sets:
            counts, rows = regressions.compare(ranks[compare][set_name], ranks[name][set_name], ir.queries)
            print(f"\n{name} against {compare}, " + "\n".join(regressions.summary_lines(set_name, counts, rows)))
    if json_out:
        write_file_atomically(json_out, json.dumps(results, indent=2) + "\n")
        print(f"wrote {json_out}")
    if per_query_out:
        write_file_atomically(per_query_out, "".join(json.dumps(r) + "\n" for r in per_query_rows))
        print(f"wrote {per_query_out}")
    return results


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--model", "models", multiple=True, help=f"model name or folder; repeat to compare (default {DEFAULT_MODEL})")
@click.option("--data", multiple=True, help="IR JSON file, or stdlib[:split] for the embedded default data "
                                             "(default stdlib:test); repeatable")
@click.option("--dims", default=None, help="comma list of Matryoshka truncations to score too, e.g. 256,128,64")
@click.option("--json", "json_out", default=None, help="write {model: {metric: value}} to this file")
@click.option("--batch-size", default=32, show_default=True, type=int)
@click.option("--precision", default="fp32", show_default=True, type=click.Choice(["fp32", "auto", "bf16", "fp16"]),
              help="fp32: ST's numbers exactly; auto: bf16 where the CPU/GPU computes it natively (faster, "
                   "metrics may differ in the 3rd decimal); bf16/fp16: autocast")
@click.option("--per-query", "per_query_out", default=None,
              help="write each query's rank of its first relevant passage to this JSONL file")
@click.option("--compare", default=None, metavar="BASE_MODEL",
              help="also score BASE_MODEL and list, per query, what each --model improved and worsened against it")
@click.option("--device", default=None, help="cpu, cuda, cuda:1… (default: cuda when available)")
def main(models, data, dims, json_out, batch_size, precision, per_query_out, device, compare):
    """Score models on IR data with ST's accuracy/precision/recall@1,3,5,10, ndcg@10, mrr@10, map@100."""
    with one_line_errors():
        run(models, data, dims, json_out, batch_size, precision, per_query_out, device, compare)


if __name__ == "__main__":
    main()
