"""Data sets: readers for the formats users have, IR sets -> training pairs, and the embedded default data set.

Formats read (every mistake is a UserError naming the file, the record and the fix):
- IR JSON `{"questions": {qid: text}, "corpus": {pid: text}, "relevant_contexts": {qid: [pid, …]}}` as one JSON
  object or a one-line JSONL file; LlamaIndex's spelling `queries` / `relevant_docs` too.
- Pair files: CSV, TSV or JSONL with columns anchor, positive[, negative…] or sentence_0, sentence_1[, sentence_2…]
  (extra columns are hard negatives, in file order).
- FlagEmbedding JSONL `{"query": …, "pos": [...], "neg": [...]}`: one row per positive, with the first n
  negatives where n is the smallest negative count in the file (MNRL needs the same columns in every row).
An IR set becomes training pairs as one (question, passage) row per relevant passage, questions in file order.

What a --train/--eval value names (a file, the embedded default data set `stdlib[:split]` built in
embedder/data/stdlib.py, or data in memory) is resolved in embedder/data/specs.py;
`python -m embedder.data stdlib --out DIR` writes the default data set as IR JSON.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

ANCHOR_COLUMNS = (("anchor", "positive", "negative"), ("sentence_0", "sentence_1", "sentence_"))


@dataclass
class IRDataset:
    queries: dict[str, str]
    corpus: dict[str, str]
    relevant: dict[str, list[str]]
    source: str = ""

    def to_json(self) -> dict:
        return {"questions": self.queries, "corpus": self.corpus, "relevant_contexts": self.relevant}


@dataclass
class PairDataset:
    columns: tuple[str, ...]  # ("anchor", "positive"[, "negative_1", …])
    rows: list[tuple[str, ...]]
    source: str = ""


# ----- low-level reading --------------------------------------------------------------------------------------
MAX_FILE_BYTES = 1 << 30  # 1 GiB: millions of pairs; past it, reading (and tokenising) would exhaust memory


def read_text(path: str | Path) -> str:
    """The whole text of a data file: a regular file (not a FIFO, a device or /dev/zero, which never end) of at
    most MAX_FILE_BYTES, in UTF-8."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise UserError(f"{path} is a directory; pass the data file inside it")
    if not path.is_file():
        raise UserError(f"{path} is not a regular file (a pipe or a device); save the data to a file and pass that")
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        raise UserError(f"{path}: cannot be read ({err.strerror}); check its permissions") from None
    if len(raw) > MAX_FILE_BYTES:
        raise UserError(f"{path} is larger than {MAX_FILE_BYTES >> 20} MiB; split it into several files "
                        "(--train is repeatable)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise UserError(f"{path}: not UTF-8 text (bad byte at line {line}); save the file as UTF-8") from None
    if not text.strip():
        raise UserError(f"{path} is empty; it needs at least one record")
    return text


def _no_duplicate_keys(path):
    def hook(pairs):
        seen = {}
        for key, value in pairs:
            if key in seen:
                raise UserError(f"{path}: the id {key!r} appears twice in one object; ids must be unique")
            seen[key] = value
        return seen
    return hook


def _parse_json(text: str, path, line_offset: int = 0):
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys(path))
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: invalid JSON at line {err.lineno + line_offset} column {err.colno} ({err.msg}); "
                        "fix the file") from None
    except RecursionError:
        raise UserError(f"{path}: JSON nested too deeply; fix the file") from None


def _json_records(text: str, path) -> list:
    """A JSON document, or JSONL records (one per non-empty line)."""
    stripped = text.strip()
    if stripped.startswith("[") or ("\n" not in stripped):
        value = _parse_json(stripped, path)
        return value if isinstance(value, list) else [value]
    if stripped.startswith("{"):
        try:  # a pretty-printed single object
            return [json.loads(stripped, object_pairs_hook=_no_duplicate_keys(path))]
        except json.JSONDecodeError:
            pass
    return [_parse_json(line, path, number - 1) for number, line in enumerate(text.splitlines(), start=1)
            if line.strip()]


def check_text(value, path, where: str) -> str:
    if not isinstance(value, str):
        raise UserError(f"{path}: {where} is {type(value).__name__}, not text; every text must be a string")
    if not value.strip():
        raise UserError(f"{path}: {where} is empty; remove the record or fill in the text")
    return value


# ----- IR sets ------------------------------------------------------------------------------------------------
IR_FORMAT = "an IR set, one JSON object with questions, corpus and relevant_contexts"


def ir_from_object(obj, path) -> IRDataset:
    if not isinstance(obj, dict):
        raise UserError(f"{path}: holds a JSON {type(obj).__name__}, not {IR_FORMAT}")
    questions = obj.get("questions", obj.get("queries"))
    relevant = obj.get("relevant_contexts", obj.get("relevant_docs"))
    corpus = obj.get("corpus")
    for key, value in (("questions", questions), ("corpus", corpus), ("relevant_contexts", relevant)):
        if value is None:
            raise UserError(f"{path}: missing key {key!r}; an IR file needs questions, corpus and relevant_contexts")
        if not isinstance(value, dict):
            raise UserError(f"{path}: {key!r} must be an object mapping ids to values")
    if not questions or not corpus:
        raise UserError(f"{path}: the data set is empty (no questions or no corpus); add records")
    for qid, text in questions.items():
        check_text(text, path, f"question {qid!r}")
    for pid, text in corpus.items():
        check_text(text, path, f"passage {pid!r}")
    clean = {}
    for qid, pids in relevant.items():
        if qid not in questions:
            raise UserError(f"{path}: relevant_contexts names question {qid!r}, which is not in questions")
        pids = [pids] if isinstance(pids, str) else pids
        if not isinstance(pids, list):
            raise UserError(f"{path}: relevant_contexts[{qid!r}] must be a list of passage ids")
        for pid in pids:
            if not isinstance(pid, str) or pid not in corpus:
                raise UserError(f"{path}: question {qid!r} names relevant passage {pid!r}, which is not in corpus; "
                                "add the passage or fix the id")
        clean[qid] = list(pids)
    if not any(clean.values()):
        raise UserError(f"{path}: no question has a relevant passage; fill relevant_contexts")
    return IRDataset(dict(questions), dict(corpus), clean, str(path))


def load_ir(path: str | Path) -> IRDataset:
    """An IR set from a JSON object or a one-line JSONL file; anything else (pair rows, CSV, a JSON list) is
    refused with a message that says an IR set is needed."""
    path = Path(path)
    text = read_text(path)
    if path.suffix.lower() in (".csv", ".tsv") or not text.lstrip().startswith("{"):
        kind = "a CSV/TSV file" if path.suffix.lower() in (".csv", ".tsv") else \
            "a JSON list" if text.lstrip().startswith("[") else "not a JSON object"
        raise UserError(f"{path}: is {kind}; evaluation (--eval, --data) needs {IR_FORMAT} (.json or one-line "
                        ".jsonl); pair files can only be --train data")
    records = _json_records(text, path)
    if len(records) != 1 or not isinstance(records[0], dict) or "corpus" not in records[0]:
        raise UserError(f"{path}: holds {len(records)} records of pairs; evaluation (--eval, --data) needs "
                        f"{IR_FORMAT}; pair files can only be --train data")
    return ir_from_object(records[0], path)


def ir_to_pairs(ir: IRDataset) -> PairDataset:
    rows = [(ir.queries[qid], ir.corpus[pid]) for qid in ir.queries for pid in ir.relevant.get(qid, [])]
    return PairDataset(("anchor", "positive"), rows, ir.source)


# ----- pair files ---------------------------------------------------------------------------------------------
def _pair_columns(header: list[str], path) -> list[str]:
    """The text columns in order (anchor, positive, negatives…), or a UserError naming what is missing."""
    names = set(header)
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
    raise UserError(f"{path}: no anchor/positive or sentence_0/sentence_1 columns (columns: {', '.join(header)}); "
                    "rename the columns")


def rows_from_records(records: list, path) -> PairDataset:
    first = records[0] if records and isinstance(records[0], dict) else None
    if first is None:
        raise UserError(f"{path}: records must be JSON objects with anchor/positive or query/pos fields")
    if "query" in first and "pos" in first:  # FlagEmbedding
        negatives = [len(r.get("neg") or []) for r in records if isinstance(r, dict)]
        n_neg = min(negatives) if negatives else 0
        rows = []
        for number, record in enumerate(records, start=1):
            if not isinstance(record, dict) or "query" not in record or not isinstance(record.get("pos"), list):
                raise UserError(f"{path}: record {number} lacks 'query' or a 'pos' list")
            if not record["pos"]:
                raise UserError(f"{path}: record {number} has an empty 'pos' list; give it a positive passage "
                                "or remove the record")
            if record.get("neg") is not None and not isinstance(record["neg"], list):
                raise UserError(f"{path}: record {number} has a 'neg' that is not a list")
            query = check_text(record["query"], path, f"record {number} query")
            negs = [check_text(n, path, f"record {number} neg") for n in (record.get("neg") or [])[:n_neg]]
            for pos in record["pos"]:
                rows.append((query, check_text(pos, path, f"record {number} pos"), *negs))
        columns = ("anchor", "positive") + tuple(f"negative_{i + 1}" for i in range(n_neg))
        return PairDataset(columns, rows, str(path))
    columns = _pair_columns(list(first), path)
    rows = []
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise UserError(f"{path}: record {number} is not a JSON object")
        for column in columns:
            if column not in record:
                raise UserError(f"{path}: record {number} lacks column {column!r}")
        rows.append(tuple(check_text(record[c], path, f"record {number} column {c!r}") for c in columns))
    return PairDataset(tuple(columns), rows, str(path))


def _read_delimited(text: str, path, delimiter: str) -> PairDataset:
    csv.field_size_limit(1 << 30)
    # strict: a quote left open (which would swallow the rest of the file into one field) is an error
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    start = 1  # the line where the record being read begins
    try:
        header = next(reader)
        columns = _pair_columns([h.strip() for h in header], path)
        index = [[h.strip() for h in header].index(c) for c in columns]
        rows = []
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
            rows.append(tuple(check_text(row[i], path, f"line {start} column {c!r}") for i, c in zip(index, columns)))
    except csv.Error as err:
        raise UserError(f"{path}: invalid {'TSV' if delimiter == chr(9) else 'CSV'} in the record that starts at "
                        f"line {start} ({err}); close or escape its quotes") from None
    return PairDataset(tuple(columns), rows, str(path))


def load_training_file(path: str | Path) -> PairDataset:
    """Training pairs from any supported format, chosen by extension and content."""
    path = Path(path)
    text = read_text(path)
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        pairs = _read_delimited(text, path, "\t" if suffix == ".tsv" else ",")
    else:
        records = _json_records(text, path)
        if len(records) == 1 and isinstance(records[0], dict) and ("corpus" in records[0] or "questions" in records[0]):
            pairs = ir_to_pairs(ir_from_object(records[0], path))
        else:
            pairs = rows_from_records(records, path)
    if not pairs.rows:
        raise UserError(f"{path}: the data set is empty; it needs at least one pair")
    return pairs
