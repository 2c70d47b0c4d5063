"""What an ST user brings trains as it does in sentence-transformers: text columns by position whatever their names
(first = anchor, second = positive, the rest negatives), `label`/`score` refused as data for another loss, Parquet
files and gzip-compressed files of every format, a `datasets.Dataset`; and a binary file is named for what it is."""

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import Dataset

import embedder
from embedder.data import pair_files, specs
from embedder.errors import UserError

PAIRS = [(f"What is item {i}?", f"Item {i} is the {i}th thing in the list.") for i in range(12)]


@pytest.fixture
def user_files(tmp_path):
    """The four files of the issue: {question, context} JSONL, a query,answer CSV, Parquet, .jsonl.gz."""
    files = {}
    files["question_context.jsonl"] = tmp_path / "rag.jsonl"
    files["question_context.jsonl"].write_text("".join(json.dumps({"question": q, "context": c}) + "\n"
                                                       for q, c in PAIRS), encoding="utf-8")
    files["query_answer.csv"] = tmp_path / "qa.csv"
    files["query_answer.csv"].write_text("query,answer\n" + "".join(f'"{q}","{a}"\n' for q, a in PAIRS))
    files["parquet"] = tmp_path / "train.parquet"
    pq.write_table(pa.table({"q": [q for q, _ in PAIRS], "doc": [a for _, a in PAIRS]}), files["parquet"])
    files["jsonl.gz"] = tmp_path / "train.jsonl.gz"
    files["jsonl.gz"].write_bytes(gzip.compress("".join(json.dumps({"anchor": q, "positive": a}) + "\n"
                                                        for q, a in PAIRS).encode()))
    return files


def test_columns_by_position_parquet_and_gzip_read_as_st_reads_them(user_files, tmp_path):
    expected_columns = {"question_context.jsonl": ("question", "context"), "query_answer.csv": ("query", "answer"),
                        "parquet": ("q", "doc"), "jsonl.gz": ("anchor", "positive")}
    for name, path in user_files.items():
        pairs = pair_files.load_training_file(path)
        assert pairs.columns == expected_columns[name] and pairs.rows == PAIRS, name
    gz_csv = tmp_path / "negatives.csv.gz"
    gz_csv.write_bytes(gzip.compress(b"a,b,c\nq1,p1,n1\nq2,p2,n2\n"))
    assert pair_files.load_training_file(gz_csv).rows == [("q1", "p1", "n1"), ("q2", "p2", "n2")]
    dataset = Dataset.from_dict({"question": [q for q, _ in PAIRS], "context": [c for _, c in PAIRS]})
    [in_memory] = specs.from_memory(dataset, "train", "pairs")
    assert in_memory.rows == PAIRS and in_memory.columns == ("question", "context")


def test_each_file_trains_and_the_report_names_the_columns_roles(user_files, tmp_path):
    roles = {"question_context.jsonl": "columns: anchor = question, positive = context",
             "query_answer.csv": "columns: anchor = query, positive = answer",
             "parquet": "columns: anchor = q, positive = doc", "jsonl.gz": "columns: anchor = anchor, positive = positive"}
    for name, path in user_files.items():
        lines = []
        result = embedder.fit(base="all-MiniLM-L6-v2", train=str(path), eval=None, validation_split=0.0,
                              max_steps=1, batch_size=4, matryoshka_dims=None, output=str(tmp_path / name / "out"),
                              echo=lambda *args, **kwargs: lines.append(" ".join(map(str, args))))
        assert any(line.endswith(roles[name]) for line in lines), lines[:3]
        assert result.model.encode(["a question"]).shape == (1, 384) and (tmp_path / name / "out").is_dir()


@pytest.mark.parametrize("name, content, message", [
    ("scored.csv", "sentence1,sentence2,score\na,b,0.5\n", "column 'score' holds labels or scores"),
    ("labelled.jsonl", json.dumps({"text1": "a", "text2": "b", "label": 1}) + "\n", "column 'label' holds labels"),
    ("one.csv", "text\na\n", "one column (text)"),
    ("table.json", b"PAR1\x15\x00\x15\xfe\xff", "a Parquet file (name it .parquet), not a text data file"),
    ("archive.jsonl", b"PK\x03\x04\x14\x00\x00\x00\xff", "a ZIP archive"),
    ("broken.jsonl.gz", b"\x1f\x8b\x08\x00garbage", "a damaged gzip file"),
    ("notparquet.parquet", b"not parquet at all", "not a readable Parquet file"),
])
def test_files_that_are_not_pairs_say_what_they_are(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        pair_files.load_training_file(path)
