"""Pair files (training data): CSV, TSV, JSONL or Parquet (each may be gzip-compressed, `.gz`) with columns anchor,
positive[, negative…] or sentence_0, sentence_1[, sentence_2…] (extra columns are hard negatives, in file order)
or, with other names, every column by position as sentence-transformers' trainer reads a dataset (first = anchor,
second = positive, the rest negatives; a `label` or `score` column marks data for another loss and is refused);
FlagEmbedding JSONL
`{"query": …, "pos": [...], "neg": [...]}` (one row per positive, with the first n negatives where n is the
smallest negative count in the file: MNRL needs the same columns in every row); and an IR set, as one
(question, passage) row per relevant passage (formats.py). A record with an empty or whitespace-only text is
skipped and counted (formats.py `skipped_line`); a structural mistake is a UserError naming the file and record.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..errors import UserError, require
from .formats import PairDataset, _json_records, data_suffix, ir_from_object, ir_to_pairs, is_blank, read_bytes, \
    read_text

LABEL_COLUMNS = ("label", "score")  # ST's trainer passes these to the loss as labels, never as texts


def _pair_columns(header: list[str], path) -> list[str]:
    """The text columns in order (anchor, positive, negatives…), or a UserError naming what is missing."""
    names = set(header)
    special = [c for c in header if c in LABEL_COLUMNS]
    if special:
        raise UserError(f"{path}: column {special[0]!r} holds labels or scores, so this is data for a loss that takes "
                        "them (CoSENT, contrastive), not (anchor, positive) pairs; give text columns only")
    if "anchor" in names or "positive" in names:
        for needed in ("anchor", "positive"):
            if needed not in names:
                raise UserError(f"{path}: missing column {needed!r} (columns: {', '.join(header)}); "
                                "pair files need anchor and positive")
        return ["anchor", "positive"] + [c for c in header if c.startswith("negative")]
    if "sentence_0" in names:
        if "sentence_1" not in names:
            raise UserError(f"{path}: missing column 'sentence_1' (columns: {', '.join(header)})")
        numbered = sorted((c for c in header if c.startswith("sentence_") and c[9:].isdigit()), key=lambda c: int(c[9:]))
        return numbered
    if len(header) < 2:
        raise UserError(f"{path}: one column ({', '.join(header) or 'none'}); pairs need an anchor and a positive "
                        "column (the first two columns, as sentence-transformers reads them)")
    return list(header)  # by position, as ST's trainer: anchor, positive, negatives


def rows_from_records(records: list, path) -> PairDataset:
    first = records[0] if records and isinstance(records[0], dict) else None
    if first is None:
        raise UserError(f"{path}: records must be JSON objects with anchor/positive or query/pos fields")
    if "query" in first and "pos" in first:  # FlagEmbedding
        negatives = [len(r["neg"]) if isinstance(r.get("neg"), list) else 0 for r in records if isinstance(r, dict)]
        n_neg = min(negatives) if negatives else 0
        rows, skipped = [], []
        for number, record in enumerate(records, start=1):
            if not isinstance(record, dict) or "query" not in record or not isinstance(record.get("pos"), list):
                raise UserError(f"{path}: record {number} lacks 'query' or a 'pos' list")
            if not record["pos"]:
                raise UserError(f"{path}: record {number} has an empty 'pos' list; give it a positive passage "
                                "or remove the record")
            if record.get("neg") is not None and not isinstance(record["neg"], list):
                raise UserError(f"{path}: record {number} has a 'neg' that is not a list")
            negs = (record.get("neg") or [])[:n_neg]
            texts = [record["query"], *record["pos"], *negs]
            if any([is_blank(text, path, f"record {number} text") for text in texts]):
                skipped.append(f"record {number}")
                continue
            rows += [(record["query"], pos, *negs) for pos in record["pos"]]
        columns = ("anchor", "positive") + tuple(f"negative_{i + 1}" for i in range(n_neg))
        return PairDataset(columns, rows, str(path), skipped, len(records))
    columns = _pair_columns(list(first), path)
    rows, skipped = [], []
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise UserError(f"{path}: record {number} is not a JSON object")
        for column in columns:
            if column not in record:
                raise UserError(f"{path}: record {number} lacks column {column!r}")
        if any([is_blank(record[c], path, f"record {number} column {c!r}") for c in columns]):
            skipped.append(f"record {number}")
            continue
        rows.append(tuple(record[c] for c in columns))
    return PairDataset(tuple(columns), rows, str(path), skipped, len(records))


def _read_delimited(text: str, path, delimiter: str) -> PairDataset:
    csv.field_size_limit(1 << 30)
    # strict: a quote left open (which would swallow the rest of the file into one field) is an error
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    start = 1  # the line where the record being read begins
    try:
        header = next(reader)
        columns = _pair_columns([h.strip() for h in header], path)
        index = [[h.strip() for h in header].index(c) for c in columns]
        rows, skipped, read = [], [], 0
        while True:
            start = reader.line_num + 1
            row = next(reader, None)
            if row is None:
                break
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise UserError(f"{path}: line {start} has {len(row)} fields, the header has {len(header)}; "
                                "quote fields that contain the delimiter")
            read += 1
            if any(not row[i].strip() for i in index):
                skipped.append(f"line {start}")
                continue
            rows.append(tuple(row[i] for i in index))
    except csv.Error as err:
        raise UserError(f"{path}: invalid {'TSV' if delimiter == chr(9) else 'CSV'} in the record that starts at "
                        f"line {start} ({err}); close or escape its quotes") from None
    return PairDataset(tuple(columns), rows, str(path), skipped, read)


def parquet_records(path: Path) -> list[dict]:
    """The rows of a Parquet file as records (pyarrow, the `parquet` extra)."""
    require("pyarrow", extra="parquet")
    import pyarrow.parquet as pq
    try:
        return pq.read_table(io.BytesIO(read_bytes(path))).to_pylist()
    except Exception as err:  # pyarrow's own errors: not Parquet after all, a damaged footer, …
        raise UserError(f"{path}: not a readable Parquet file ({str(err).splitlines()[0][:120]}); re-export it") from None


def load_training_file(path: str | Path) -> PairDataset:
    """Training pairs from any supported format, chosen by extension (a `.gz` one by the name inside) and
    content."""
    path = Path(path)
    suffix = data_suffix(path)
    if suffix == ".parquet":
        records = parquet_records(path)
        if not records:
            raise UserError(f"{path}: the data set is empty; it needs at least one pair")
        return rows_from_records(records, path)
    text = read_text(path)
    if suffix in (".csv", ".tsv"):
        pairs = _read_delimited(text, path, "\t" if suffix == ".tsv" else ",")
    else:
        records = _json_records(text, path)
        if len(records) == 1 and isinstance(records[0], dict) and ("corpus" in records[0] or "questions" in records[0]):
            pairs = ir_to_pairs(ir_from_object(records[0], path))
        else:
            pairs = rows_from_records(records, path)
    if not pairs.rows:
        what = f"every record has an empty text ({', '.join(pairs.skipped[:3])})" if pairs.skipped else \
            "the data set is empty"
        raise UserError(f"{path}: {what}; it needs at least one pair")
    return pairs


__all__ = ["load_training_file", "rows_from_records"]
