"""Evaluating models on IR data sets, side by side: what evaluate.py runs.

Each model encodes each set's questions and corpus and is scored by ST's InformationRetrievalEvaluator (ir.py: 30
metrics, at full size and at every asked Matryoshka truncation); the table prints models as columns and metrics
as rows, the best value of each row marked with *. With a base model to compare with, every other model's
per-query changes are listed (regressions.py).
"""

from __future__ import annotations

import json
import os
import sys

from ..data import specs as datasets
from ..data.formats import MAX_SKIPPED_SHARE, skipped_line
from ..errors import UserError
from ..files import check_output, write_file_atomically
from ..model.embedder import load
from ..model.precision import choose_precision
from . import regressions
from .ir import InformationRetrievalEvaluator, format_table

DEFAULT_MODEL = "all-mpnet-base-v2"


def evaluate(models=(), data=(), dims=(), json_out=None, batch_size=32, precision="fp32", per_query_out=None,
             device=None, compare=None, max_skipped_share=MAX_SKIPPED_SHARE) -> dict[str, dict[str, float]]:
    """Score each model on each IR set (the embedded data's test split by default) and print the table; with
    `compare`, also what each model improved and worsened per query against that base model. Returns
    {model: {metric: value}}; writes the JSON and per-query files when asked. UserError names the flag."""
    if batch_size <= 0:
        raise UserError(f"--batch-size {batch_size}: must be a positive integer")
    models = list(models or [DEFAULT_MODEL])
    if compare:  # the base first: every other model is compared with it
        models = [compare] + [m for m in models if m != compare]
    data = list(data) or ["stdlib:test"]
    inputs = [("--data", spec) for spec in data if not datasets.is_default_spec(spec)]
    inputs += [("--model", name) for name in models if os.path.exists(os.path.expanduser(name))]
    outputs = [(flag, path) for flag, path in (("--json", json_out), ("--per-query", per_query_out)) if path]
    for flag, path in outputs:
        check_output(path, flag, inputs + [o for o in outputs if o[0] != flag], is_file=True)
    sets = [(datasets.set_name(spec), datasets.load_eval_set(spec)) for spec in data]
    for _, ir in sets:
        warning = skipped_line(ir, max_skipped_share)  # the questions and passages left out (empty texts), as ST's evaluator skips
        if warning:
            print(warning, file=sys.stderr)
    results: dict[str, dict[str, float]] = {}
    per_query_rows = []
    keys: list[str] = []
    ranks: dict[str, dict] = {}  # model -> eval set -> query id -> rank of the first relevant passage
    for name in models:
        model = load(name, device=device)
        if precision == "auto" or precision == "bf16":
            precision, reason, warning = choose_precision(precision, model.device)
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


__all__ = ["DEFAULT_MODEL", "evaluate"]
