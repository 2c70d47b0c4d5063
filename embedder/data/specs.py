"""What a data argument names, read into a data set: the one place `--train`, `--eval`, `--data` and the Python
API's `train=`/`eval=` are resolved.

A spec is
- a path to a file in any format embedder/data.py reads;
- `stdlib[:split]`, the embedded default data set (embedder/data/stdlib.py);
- data already in memory, given to `embedder.fit`: a PairDataset or IRDataset, a list of (anchor, positive[,
  negative…]) tuples, a list of {"anchor": …, "positive": …} records, or an IR dict with questions, corpus and
  relevant_contexts. In-memory data is checked by the same rules, with the same one-line messages, as a file.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import UserError
from .formats import IRDataset, PairDataset, check_text, ir_from_object, ir_to_pairs, load_ir
from .pair_files import load_training_file, rows_from_records
from .stdlib import SPLIT_SIZES, stdlib_dataset

DEFAULT_DATA = "stdlib"


def is_default_spec(spec) -> bool:
    """Whether a data spec names the embedded default data set (`stdlib` or `stdlib:split`)."""
    return isinstance(spec, str) and (spec == DEFAULT_DATA or spec.startswith(DEFAULT_DATA + ":"))


def is_file_spec(spec) -> bool:
    return isinstance(spec, str) and not is_default_spec(spec)


def label(spec) -> str:
    """How a spec is named in messages, the model card and train_config.json."""
    return spec if isinstance(spec, str) else spec.source


def set_name(spec) -> str:
    """A short name for a data spec, used to prefix its metrics: the file stem, stdlib_test, or the in-memory
    set's name."""
    if not isinstance(spec, str):
        return re.sub(r"\W+", "_", spec.source).strip("_") or "data"
    return Path(spec).stem if spec.endswith((".json", ".jsonl")) else spec.replace(":", "_")


def _default_set(spec: str, default_split: str) -> IRDataset:
    split = spec.partition(":")[2] or default_split
    if split not in SPLIT_SIZES:
        raise UserError(f"unknown split {split!r} of the default data; use one of {', '.join(SPLIT_SIZES)}")
    return stdlib_dataset()[split]


def load_eval_set(spec) -> IRDataset:
    """An IR set from a path, `stdlib[:split]` (split defaults to test) or an in-memory IR set."""
    if isinstance(spec, IRDataset):
        return spec
    if is_default_spec(spec):
        return _default_set(spec, "test")
    return load_ir(spec)


def load_train(spec) -> PairDataset:
    """Training pairs from a path, `stdlib[:split]` (split defaults to train) or in-memory data."""
    if isinstance(spec, PairDataset):
        return spec
    if isinstance(spec, IRDataset):
        return ir_to_pairs(spec)
    if is_default_spec(spec):
        return ir_to_pairs(_default_set(spec, "train"))
    return load_training_file(spec)


def pairs_from_memory(value, source: str) -> PairDataset:
    """Training pairs from a list of tuples or of records (see the module docstring); UserError naming `source`."""
    if isinstance(value, dict):
        return ir_to_pairs(ir_from_object(value, source))
    rows = list(value)
    if not rows:
        raise UserError(f"{source}: the data set is empty; it needs at least one pair")
    if isinstance(rows[0], dict):
        return rows_from_records(rows, source)
    width = None
    clean = []
    for number, row in enumerate(rows, start=1):
        if isinstance(row, str) or not isinstance(row, (tuple, list)) or len(row) < 2:
            raise UserError(f"{source}: row {number} is {type(row).__name__}, not an (anchor, positive[, negative…]) "
                            "tuple; give a list of tuples of texts")
        if width is not None and len(row) != width:
            raise UserError(f"{source}: row {number} has {len(row)} texts, row 1 has {width}; give every row the "
                            "same columns")
        width = len(row)
        clean.append(tuple(check_text(text, source, f"row {number} text {i + 1}") for i, text in enumerate(row)))
    columns = ("anchor", "positive") + tuple(f"negative_{i}" for i in range(1, width - 1))
    return PairDataset(columns, clean, source)


def _records_of_columns(value):
    """Training pairs given as columns — a pandas DataFrame, or a mapping of column name to texts
    ({"anchor": [...], "positive": [...]}) — as a list of records; anything else as it is."""
    if hasattr(value, "to_dict") and hasattr(value, "columns") and not isinstance(value, dict):  # a DataFrame
        return value.to_dict("records")
    if hasattr(value, "column_names") and hasattr(value, "to_list"):  # a datasets.Dataset
        return value.to_list()
    if isinstance(value, dict) and "corpus" not in value and "questions" not in value and value and \
            all(isinstance(column, (list, tuple)) for column in value.values()):
        names, columns = list(value), list(value.values())
        if len({len(column) for column in columns}) > 1:
            raise UserError(f"train (in memory): the columns {', '.join(names)} differ in length; give every column "
                            "one text per pair")
        return [dict(zip(names, texts)) for texts in zip(*columns)]
    return value


def from_memory(value, flag: str, kind: str):
    """A --train ('pairs') or --eval ('ir') spec from what a Python caller passed: strings stay paths/specs,
    in-memory data becomes a checked data set. Returns a tuple of specs."""
    if value is None:
        return ()
    value = _records_of_columns(value) if kind == "pairs" else value
    if isinstance(value, (str, Path, PairDataset, IRDataset, dict)):
        value = [value]
    items = list(value)
    if items and not isinstance(items[0], (str, Path, PairDataset, IRDataset, dict)) or \
            kind == "pairs" and items and isinstance(items[0], dict) and "corpus" not in items[0]:
        items = [items]  # one list of rows (tuples, or records), not a list of specs
    specs = []
    for number, item in enumerate(items):
        source = f"{flag}[{number}] (in memory)" if len(items) > 1 else f"{flag} (in memory)"
        if isinstance(item, (str, Path)):
            specs.append(str(item))
        elif isinstance(item, (PairDataset, IRDataset)):
            specs.append(item)
        elif kind == "ir":
            if not isinstance(item, dict):
                raise UserError(f"{source}: is a {type(item).__name__}; evaluation data must be an IR dict with "
                                "questions, corpus and relevant_contexts, or a file path")
            specs.append(ir_from_object(item, source))
        else:
            specs.append(pairs_from_memory(item, source))
    return tuple(specs)


def overlap_warnings(train_pairs, eval_sets) -> list[str]:
    """Eval questions that are also training anchors, and eval passages that are also training positives (the
    same text): either inflates the eval metrics. One line per eval set that overlaps."""
    anchors = {row[0] for pairs in train_pairs for row in pairs.rows}
    positives = {row[1] for pairs in train_pairs for row in pairs.rows}
    lines = []
    for name, ir in eval_sets:
        questions = sum(text in anchors for text in ir.queries.values())
        passages = sum(text in positives for text in ir.corpus.values())
        if questions or passages:
            lines.append(f"WARNING: {ir.source or name}: {questions} of {len(ir.queries)} eval questions are training "
                         f"anchors and {passages} of {len(ir.corpus)} eval passages are training positives; the "
                         "metrics are inflated: evaluate on held-out questions")
    return lines


__all__ = ["DEFAULT_DATA", "from_memory", "is_default_spec", "is_file_spec", "label", "load_eval_set", "load_train",
           "overlap_warnings", "pairs_from_memory", "set_name"]
