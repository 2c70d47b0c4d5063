"""Data sets: readers for the formats users have, IR sets -> training pairs, and the embedded default data set.

Formats read (every mistake is a UserError naming the file, the record and the fix):
- IR JSON `{"questions": {qid: text}, "corpus": {pid: text}, "relevant_contexts": {qid: [pid, …]}}` as one JSON
  object or a one-line JSONL file; LlamaIndex's spelling `queries` / `relevant_docs` too.
- Pair files: CSV, TSV or JSONL with columns anchor, positive[, negative…] or sentence_0, sentence_1[, sentence_2…]
  (extra columns are hard negatives, in file order).
- FlagEmbedding JSONL `{"query": …, "pos": [...], "neg": [...]}`: one row per positive, with the first n
  negatives where n is the smallest negative count in the file (MNRL needs the same columns in every row).
An IR set becomes training pairs as one (question, passage) row per relevant passage, questions in file order.
`content_digest` names training pairs by their texts (what --resume compares).

What a --train/--eval value names (a file, the embedded default data set `stdlib[:split]` built in
embedder/data/stdlib.py, or data in memory) is resolved in embedder/data/specs.py;
`python -m embedder.data stdlib --out DIR` writes the default data set as IR JSON.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError

ANCHOR_COLUMNS = (("anchor", "positive", "negative"), ("sentence_0", "sentence_1", "sentence_"))


MAX_SKIPPED_SHARE = 0.05  # a file with more unusable records than this is refused, not trained on


@dataclass
class IRDataset:
    queries: dict[str, str]
    corpus: dict[str, str]
    relevant: dict[str, list[str]]
    source: str = ""
    skipped: list[str] = field(default_factory=list)  # the unusable records left out ("passage 'p7'", …)
    records: int = 0  # questions + passages read

    def to_json(self) -> dict:
        return {"questions": self.queries, "corpus": self.corpus, "relevant_contexts": self.relevant}


@dataclass
class PairDataset:
    columns: tuple[str, ...]  # ("anchor", "positive"[, "negative_1", …])
    rows: list[tuple[str, ...]]
    source: str = ""
    skipped: list[str] = field(default_factory=list)  # the unusable records left out ("line 7", …)
    records: int = 0  # records read


def skipped_line(data: IRDataset | PairDataset, max_share: float = MAX_SKIPPED_SHARE,
                 flag: str | None = "--max-skipped-share") -> str | None:
    """The warning for the records a file's reader left out (an empty or whitespace-only text; a question whose
    passages are all empty), or None; UserError when they are more than `max_share` of the file."""
    if not data.skipped:
        return None
    count, total = len(data.skipped), max(data.records, 1)
    first = ", ".join(data.skipped[:3]) + (", …" if count > 3 else "")
    if count / total > max_share:
        accept = f", or pass {flag} {min(1.0, count / total + 0.01):.2f} to use the rest" if flag else ""
        raise UserError(f"{data.source}: {count} of {total} records are unusable (empty text: {first}), more than "
                        f"{max_share:.0%}; fix the file{accept}")
    return f"WARNING: {data.source}: skipped {count} of {total} records with an empty text ({first})"


# ----- low-level reading --------------------------------------------------------------------------------------
MAX_FILE_BYTES = 1 << 30  # 1 GiB: millions of pairs; past it, reading (and tokenising) would exhaust memory


GZIP_MAGIC = b"\x1f\x8b"
BINARY_KINDS = ((b"PAR1", "a Parquet file (name it .parquet)"), (b"PK\x03\x04", "a ZIP archive (unpack it)"),
                (b"SQLite format 3", "an SQLite database (export a table to CSV or JSONL)"),
                (b"ARROW1", "an Arrow file (save it as Parquet, CSV or JSONL)"),
                (b"\x89HDF", "an HDF5 file (save it as Parquet, CSV or JSONL)"),
                (b"%PDF", "a PDF document (extract the text and make pairs of it)"))


def data_suffix(path: Path) -> str:
    """A data file's format suffix: the name's last one, or the one before `.gz` (train.jsonl.gz -> .jsonl)."""
    suffixes = [s.lower() for s in path.suffixes]
    return suffixes[-2] if len(suffixes) > 1 and suffixes[-1] == ".gz" else (suffixes[-1] if suffixes else "")


def read_bytes(path: str | Path) -> bytes:
    """The whole content of a data file, gunzipped when it is gzip-compressed: a regular file (not a FIFO, a
    device or /dev/zero, which never end) of at most MAX_FILE_BYTES, compressed or not."""
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
    if raw.startswith(GZIP_MAGIC):
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as f:
                raw = f.read(MAX_FILE_BYTES + 1)
        except (OSError, EOFError, zlib.error) as err:
            raise UserError(f"{path}: a damaged gzip file ({err}); compress it again") from None
    if len(raw) > MAX_FILE_BYTES:
        raise UserError(f"{path} is larger than {MAX_FILE_BYTES >> 20} MiB (uncompressed); split it into several "
                        "files (--train is repeatable)")
    return raw


def read_text(path: str | Path) -> str:
    """The whole text of a data file (`read_bytes`), in UTF-8; a binary file is named for what it is."""
    raw = read_bytes(path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        kind = next((what for magic, what in BINARY_KINDS if raw.startswith(magic)), None)
        if kind or b"\0" in raw[:8192]:
            raise UserError(f"{path}: {kind or 'a binary file'}, not a text data file; training data is CSV, TSV, "
                            "JSON/JSONL or Parquet, optionally .gz") from None
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
    # JSON Lines ends records at "\n" only: str.splitlines() would also cut inside a string at U+0085, U+2028 and
    # the other Unicode line breaks that JSON writes unescaped (json.dumps(..., ensure_ascii=False), as mining does)
    return [_parse_json(line, path, number - 1) for number, line in enumerate(text.split("\n"), start=1)
            if line.strip()]


def check_text(value, path, where: str) -> str:
    if is_blank(value, path, where):
        raise UserError(f"{path}: {where} is empty; remove the record or fill in the text")
    return value


def is_blank(value, path, where: str) -> bool:
    """True for an empty or whitespace-only text (a record a file reader skips); UserError for a value that is no
    text at all, or one no tokenizer can take (a lone UTF-16 surrogate such as "\\ud83d", half of an emoji)."""
    if not isinstance(value, str):
        raise UserError(f"{path}: {where} is {type(value).__name__}, not text; every text must be a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise UserError(f"{path}: {where} holds a lone UTF-16 surrogate ({value[err.start]!a} at character "
                        f"{err.start}), half of a character; repair the text (write the pair, or drop it)") from None
    return not value.strip()


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
    skipped = [f"question {qid!r}" for qid, text in questions.items() if is_blank(text, path, f"question {qid!r}")]
    skipped += [f"passage {pid!r}" for pid, text in corpus.items() if is_blank(text, path, f"passage {pid!r}")]
    usable = {pid: text for pid, text in corpus.items() if text.strip()}
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
                                f"{_id_hint(pid, corpus)}")
        if pids and not any(pid in usable for pid in pids) and questions[qid].strip():
            skipped.append(f"question {qid!r} (its passages are empty)")
        if questions[qid].strip():
            clean[qid] = [pid for pid in pids if pid in usable]
    kept = {qid: text for qid, text in questions.items() if text.strip() and (clean.get(qid) or qid not in relevant
                                                                               or not relevant[qid])}
    if not any(clean.values()):
        raise UserError(f"{path}: no question has a relevant passage; fill relevant_contexts")
    clean = {qid: pids for qid, pids in clean.items() if qid in kept}
    return IRDataset(kept, usable, clean, str(path), skipped, len(questions) + len(corpus))


def _id_hint(pid, corpus: dict) -> str:
    """The fix for an unknown passage id: its type differs from the corpus keys' (JSON keys are always strings)."""
    if not isinstance(pid, str) and str(pid) in corpus:
        return (f"the ids differ in type: relevant_contexts gives the number {pid}, the corpus keys are strings "
                f"(\"{pid}\"); write the ids as strings")
    return "add the passage or fix the id"


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
    return PairDataset(("anchor", "positive"), rows, ir.source, ir.skipped, ir.records)


def content_digest(pair_sets: list[PairDataset]) -> str:
    """The training data by content (what --resume compares): sha256 over every text of every row, in order, NUL
    after a text, newline after a row, form feed after a data set; 16 hex digits."""
    digest = hashlib.sha256()
    for pairs in pair_sets:
        for row in pairs.rows:
            for text in row:
                digest.update(text.encode("utf-8") + b"\0")
            digest.update(b"\n")
        digest.update(b"\f")
    return digest.hexdigest()[:16]
