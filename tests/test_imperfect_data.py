"""Real data with the odd bad record trains, and the remaining mistakes are one line: a record with an empty text is
skipped with one warning that counts them (the file is refused only past --max-skipped-share); a lone UTF-16
surrogate, passage ids of another type than the corpus keys, a tokenizer that states no length, non-string
inputs to encode, and training pairs as a pandas DataFrame or a mapping of columns. Each CLI case is a subprocess
(tests/battery.py); the rest call the API."""

import json
import shutil

import pytest
from battery import run, run_cases

import embedder
from embedder.model.tokenizer import TextTokenizer, TokenizerProblem

QUESTIONS = {f"q{i}": f"What does clause {i} of the policy say?" for i in range(40)}
CORPUS = {f"p{i}": f"Clause {i} of the policy says that item {i} is covered." for i in range(20)}
RELEVANT = {f"q{i}": [f"p{i // 2}"] for i in range(40)}  # two questions per passage, as generated sets ask


def _ir(**changes):
    return json.dumps({"questions": QUESTIONS, "corpus": CORPUS, "relevant_contexts": RELEVANT, **changes})


def test_an_empty_passage_is_skipped_with_one_warning(tiny_bert_folder, tmp_path):
    """An empty chunk with two questions about it (as LlamaIndex's generator leaves them): ST trains on such a
    set, and so does train.py, saying what it left out; evaluate.py scores the rest."""
    path = tmp_path / "rag.json"
    path.write_text(_ir(corpus={**CORPUS, "p7": "  "}))
    result = run(["train.py", "--base", str(tiny_bert_folder), "--train", str(path), "--eval", str(path),
                  "--epochs", "1", "--batch-size", "8", "--matryoshka-dims", "none", "--eval-general", "none",
                  "--output", str(tmp_path / "out")], tmp_path)
    assert result.returncode == 0, result.stderr[-1500:]
    expected = (f"WARNING: {path}: skipped 3 of 60 records with an empty text (passage 'p7', question 'q14' (its "
                "passages are empty), question 'q15' (its passages are empty))")
    assert result.stderr.count(expected) == 2  # once as training data, once as evaluation data
    assert "training pairs: 38 in 1 set(s)" in result.stdout
    scored = run(["evaluate.py", "--model", str(tiny_bert_folder), "--data", str(path)], tmp_path)
    assert scored.returncode == 0 and scored.stderr.strip() == expected, scored.stderr[-1500:]
    assert "38 queries / 19 passages" in scored.stdout


def test_the_remaining_mistakes_are_one_line(tiny_bert_folder, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "mostly-empty.json").write_text(_ir(corpus={**CORPUS, **{f"p{i}": "" for i in range(4)}}))
    (data / "surrogate.json").write_text(_ir(questions={**QUESTIONS, "q3": "What about \\ud83d?"})
                                         .replace("\\\\ud83d", "\\ud83d"))
    (data / "int-ids.json").write_text(json.dumps({"questions": {"q": "a question"}, "corpus": {"0": "a passage"},
                                                   "relevant_contexts": {"q": [0]}}))
    work = tmp_path / "work"
    work.mkdir()
    train = ["train.py", "--base", str(tiny_bert_folder), "--eval", "none", "--batch-size", "8", "--output",
             str(work / "out")]
    run_cases([
        ("4 of 20 passages empty (8 questions lost): past 5 %", [*train, "--train", str(data / "mostly-empty.json")],
         "12 of 60 records are unusable (empty text: passage 'p0', passage 'p1', passage 'p2', …), more than 5%; "
         "fix the file, or pass --max-skipped-share 0.21"),
        ("a lone surrogate", [*train, "--train", str(data / "surrogate.json")],
         "question 'q3' holds a lone UTF-16 surrogate ('\\ud83d' at character 11)"),
        ("integer passage ids", ["evaluate.py", "--model", str(tiny_bert_folder), "--data", str(data / "int-ids.json")],
         "the ids differ in type: relevant_contexts gives the number 0, the corpus keys are strings"),
    ], work)
    accepted = run([*train, "--train", str(data / "mostly-empty.json"), "--max-skipped-share", "0.25",
                    "--max-steps", "1"], work)
    assert accepted.returncode == 0 and "skipped 12 of 60 records" in accepted.stderr, accepted.stderr[-1500:]


def test_a_tokenizer_that_states_no_length_is_one_clear_error(minilm_folder, tmp_path):
    folder = tmp_path / "tokenizer"
    folder.mkdir()
    for name in ("tokenizer.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(minilm_folder / name, folder / name)
    config = json.loads((minilm_folder / "tokenizer_config.json").read_text())
    config.pop("model_max_length", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(TokenizerProblem, match="no file says how long a text may be .* set max_seq_length in "
                                               "sentence_bert_config.json"):
        TextTokenizer(str(folder), None, True, None)
    assert TextTokenizer(str(folder), None, True, 512).max_seq_length == 512  # the config's positions suffice


def test_encode_names_an_input_that_is_not_a_string(minilm_folder):
    with pytest.raises(TypeError, match="encode: input 1 is NoneType, not a string"):
        embedder.load(str(minilm_folder), device="cpu").encode(["fine", None])


@pytest.mark.parametrize("kind", ["DataFrame", "mapping of columns"])
def test_training_pairs_as_columns(kind, tiny_bert_folder, tmp_path):
    columns = {"anchor": [f"question {i}" for i in range(8)], "positive": [f"passage {i} " * 3 for i in range(8)]}
    if kind == "DataFrame":
        pandas = pytest.importorskip("pandas")  # installed with datasets, the test extra
        train = pandas.DataFrame(columns)
    else:
        train = columns
    result = embedder.fit(base=str(tiny_bert_folder), train=train, output=str(tmp_path / "out"), max_steps=1,
                          batch_size=4, matryoshka_dims=None, echo=lambda *a, **k: None)
    assert result.config.hard_negative_columns == 0 and (tmp_path / "out" / "modules.json").is_file()
    with pytest.raises(embedder.UserError, match="the columns anchor, positive differ in length"):
        embedder.fit(base=str(tiny_bert_folder), train={**columns, "positive": columns["positive"][:5]},
                     output=str(tmp_path / "bad"))
