"""Data readers: every supported format against hand-written files, every user mistake as one clear UserError
line naming the file, IR -> pairs, the embedded default data set's shape and split hygiene, and a property test
that random bytes and random JSON never raise anything but UserError."""

import hashlib
import json

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from embedder.data import formats as data, pair_files, stdlib as stdlib_data
from embedder.data.mining import write_rows
from embedder.errors import UserError

IR = {"questions": {"q1": "What is A?", "q2": "What is B?"}, "corpus": {"p1": "A is a letter.", "p2": "B too."},
      "relevant_contexts": {"q1": ["p1"], "q2": ["p2", "p1"]}}


def _write(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def test_ir_json_jsonl_and_llamaindex_spelling(tmp_path):
    as_json = data.load_ir(_write(tmp_path, "a.json", json.dumps(IR, indent=2)))
    as_jsonl = data.load_ir(_write(tmp_path, "a.jsonl", json.dumps(IR)))
    llama = {"queries": IR["questions"], "corpus": IR["corpus"], "relevant_docs": IR["relevant_contexts"]}
    as_llama = data.load_ir(_write(tmp_path, "l.json", json.dumps(llama)))
    assert as_json.relevant == as_jsonl.relevant == as_llama.relevant == IR["relevant_contexts"]
    pairs = data.ir_to_pairs(as_json)
    assert pairs.rows == [("What is A?", "A is a letter."), ("What is B?", "B too."), ("What is B?", "A is a letter.")]


def test_pair_formats(tmp_path):
    csv_pairs = pair_files.load_training_file(_write(tmp_path, "p.csv", 'anchor,positive,negative\n"q, 1",p1,n1\nq2,p2,n2\n'))
    assert csv_pairs.columns == ("anchor", "positive", "negative") and csv_pairs.rows[0] == ("q, 1", "p1", "n1")
    tsv = pair_files.load_training_file(_write(tmp_path, "p.tsv", "sentence_0\tsentence_1\nq1\tp1\n"))
    assert tsv.rows == [("q1", "p1")]
    jsonl = pair_files.load_training_file(_write(tmp_path, "p.jsonl", '{"anchor": "q1", "positive": "p1"}\n\n'
                                                               '{"anchor": "q2", "positive": "p2"}\n'))
    assert jsonl.rows == [("q1", "p1"), ("q2", "p2")]
    flag = pair_files.load_training_file(_write(tmp_path, "f.jsonl", '{"query": "q", "pos": ["a", "b"], "neg": ["n1", "n2"]}\n'
                                                              '{"query": "r", "pos": ["c"], "neg": ["n3"]}\n'))
    assert flag.columns == ("anchor", "positive", "negative_1")
    assert flag.rows == [("q", "a", "n1"), ("q", "b", "n1"), ("r", "c", "n3")]
    ir_as_training = pair_files.load_training_file(_write(tmp_path, "ir.json", json.dumps(IR)))
    assert len(ir_as_training.rows) == 3


BAD_INPUTS = [
    ("missing file", None, "no such file"),
    ("directory", "DIR", "is a directory"),
    ("empty.json", "", "is empty"),
    ("truncated.json", '{"questions": {"q1": "a"', "invalid JSON at line 1"),
    ("garbage.json", b"\x89PNG\x00\x01\xfe\xff", "a binary file, not a text data file"),
    ("latin1.csv", "anchor,positive\ncaf\xe9,x\n".encode("latin-1"), "not UTF-8 text (bad byte at line 2)"),
    ("nopositive.csv", "anchor,answer\nq,a\n", "missing column 'positive'"),
    ("emptytext.csv", "anchor,positive\n ,p1\n\t,p2\n", "every record has an empty text (line 2, line 3)"),
    ("dupid.json", '{"questions": {"q1": "a", "q1": "b"}, "corpus": {"p": "x"}, "relevant_contexts": {"q1": ["p"]}}',
     "appears twice"),
    ("absent.json", json.dumps(dict(IR, relevant_contexts={"q1": ["nope"]})), "not in corpus"),
    ("emptyset.json", json.dumps({"questions": {}, "corpus": {}, "relevant_contexts": {}}), "empty"),
    ("nokey.json", json.dumps({"questions": {"q": "a"}, "corpus": {"p": "b"}}), "missing key 'relevant_contexts'"),
    ("badline.jsonl", '{"anchor": "a", "positive": "b"}\n{"anchor": "c", "positive": }\n', "invalid JSON at line 2"),
    ("headeronly.csv", "anchor,positive\n", "empty"),
    ("negbool.json", json.dumps({"query": None, "pos": None, "neg": True}), "lacks 'query' or a 'pos' list"),
    ("negtext.jsonl", json.dumps({"query": "q", "pos": ["p"], "neg": "n"}), "'neg' that is not a list"),
]


def test_unicode_line_breaks_inside_jsonl_strings_stay_in_the_text(tmp_path):
    """JSON writes U+0085, U+2028, U+2029, \\x1c-\\x1e unescaped (json.dumps(..., ensure_ascii=False), as
    `python -m embedder mine` writes); JSON Lines ends a record at "\\n" only, so each stays inside its text.
    econpapers' passages hold U+0085: its mined file once failed to read."""
    rows = [("q\x85one", "p\u2028one", "n\u2029one"), ("q\x1ctwo", "p\x1dtwo", "n\x1e\x0btwo\x0c")]
    path = tmp_path / "mined.jsonl"
    write_rows(path, rows)
    assert len(path.read_text(encoding="utf-8").split("\n")) == 3  # two records and the final newline
    read = pair_files.load_training_file(path)
    assert read.rows == rows and read.columns == ("anchor", "positive", "negative_1")


def test_records_with_empty_texts_are_skipped_and_counted(tmp_path):
    """Real RAG sets hold the odd empty chunk: the record is left out and counted; the file is refused only when
    such records are more than the allowed share (5 % by default)."""
    csv_path = _write(tmp_path, "p.csv", "anchor,positive\n" + "".join(f"q{i},p{i}\n" for i in range(39)) + "q, \n")
    pairs = pair_files.load_training_file(csv_path)
    assert len(pairs.rows) == 39 and pairs.skipped == ["line 41"] and pairs.records == 40
    assert data.skipped_line(pairs) == f"WARNING: {csv_path}: skipped 1 of 40 records with an empty text (line 41)"
    with pytest.raises(UserError, match=r"1 of 40 records are unusable .* more than 2%; fix the file, or pass "
                                        r"--max-skipped-share 0.04"):
        data.skipped_line(pairs, max_share=0.02)
    # an IR set: an empty passage, and the two questions about it, which have no other passage
    ir = {"questions": {f"q{i}": f"question {i}" for i in range(30)},
          "corpus": {**{f"p{i}": f"passage {i}" for i in range(29)}, "p29": " "},
          "relevant_contexts": {**{f"q{i}": [f"p{i}"] for i in range(28)}, "q28": ["p29"], "q29": ["p29"]}}
    ir_path = _write(tmp_path, "ir.json", json.dumps(ir))
    loaded = data.load_ir(ir_path)
    assert "q28" not in loaded.queries and "p29" not in loaded.corpus and len(loaded.queries) == 28
    assert loaded.skipped == ["passage 'p29'", "question 'q28' (its passages are empty)",
                              "question 'q29' (its passages are empty)"] and loaded.records == 60
    assert len(pair_files.load_training_file(ir_path).rows) == 28
    assert data.skipped_line(loaded).startswith(f"WARNING: {ir_path}: skipped 3 of 60 records with an empty text")


def test_an_id_of_another_type_is_named_as_such(tmp_path):
    path = _write(tmp_path, "ir.json", json.dumps({"questions": {"q": "a"}, "corpus": {"0": "b"},
                                                   "relevant_contexts": {"q": [0]}}))
    with pytest.raises(UserError, match=r"the ids differ in type: relevant_contexts gives the number 0, the corpus "
                                        r'keys are strings \("0"\)'):
        data.load_ir(path)


@pytest.mark.parametrize("name,content,message", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_inputs_are_one_line_user_errors(tmp_path, name, content, message):
    if content is None:
        path = tmp_path / "does_not_exist.json"
    elif content == "DIR":
        path = tmp_path / "folder.json"
        path.mkdir()
    else:
        path = _write(tmp_path, name, content)
    with pytest.raises(UserError) as err:
        pair_files.load_training_file(path)
    text = str(err.value)
    assert message in text and str(path) in text and "\n" not in text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300), st.sampled_from([".json", ".jsonl", ".csv", ".tsv"]))
def test_random_bytes_never_crash_the_readers(tmp_path, raw, suffix):
    path = tmp_path / f"random{suffix}"
    path.write_bytes(raw)
    for reader in (pair_files.load_training_file, data.load_ir):
        try:
            reader(path)
        except UserError:
            pass


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda children: st.lists(children, max_size=4) | st.dictionaries(
                               st.sampled_from(["questions", "corpus", "relevant_contexts", "anchor", "positive",
                                                "query", "pos", "neg", "q1", "p1"]) | st.text(max_size=5),
                               children, max_size=5), max_leaves=20)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(json_values, st.booleans())
def test_random_json_never_crashes_the_readers(tmp_path, value, as_lines):
    text = "\n".join(json.dumps(v) for v in value) if as_lines and isinstance(value, list) else json.dumps(value)
    path = tmp_path / ("random.jsonl" if as_lines else "random.json")
    path.write_text(text, encoding="utf-8")
    for reader in (pair_files.load_training_file, data.load_ir):
        try:
            reader(path)
        except UserError:
            pass


def test_stdlib_default_data_set():
    sets = stdlib_data.stdlib_dataset()
    assert {k: len(v.queries) for k, v in sets.items()} == {"test": 100, "val": 100, "train": 600}
    modules = {split: {qid[2:].rsplit(".", 1)[0] for qid in ir.queries} for split, ir in sets.items()}
    assert not modules["train"] & modules["test"] and not modules["train"] & modules["val"]
    assert not modules["val"] & modules["test"]
    for ir in sets.values():
        for qid, pids in ir.relevant.items():
            assert pids == ["p:" + qid[2:]]
            assert ir.queries[qid] not in " ".join(ir.corpus[pids[0]].split())  # its docstring was removed
    stdlib_data._stdlib_dataset.cache_clear()
    assert stdlib_data.stdlib_dataset()["test"].queries == sets["test"].queries  # deterministic: built again, the same


def test_content_digest_is_the_documented_sha256():
    """--resume compares the training data by this digest: worked out by hand from its docstring's layout."""
    sets = [data.PairDataset(("anchor", "positive"), [("q1", "p1"), ("q2", "é")]),
            data.PairDataset(("anchor", "positive"), [])]
    by_hand = hashlib.sha256("q1\0p1\0\nq2\0é\0\n\f\f".encode("utf-8")).hexdigest()[:16]
    assert data.content_digest(sets) == by_hand
    assert data.content_digest(sets[:1]) != by_hand  # the second (empty) set still counts
