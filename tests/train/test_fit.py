"""The Python training API: embedder.fit takes the config's fields as keywords and data as paths or in memory.

In-memory data trains exactly like the same data in files given to train.py (the weights are byte-identical), and
bad in-memory data raises embedder.UserError with the message the command line prints for the same mistake in a
file."""

import json
import subprocess
import sys

import pytest
from conftest import REPO

import embedder

PAIRS = [(f"what is item {i} about?", f"item {i} is about topic {i % 5}") for i in range(24)]
IR = {"questions": {f"q{i}": f"what is item {i} about?" for i in range(6)},
      "corpus": {f"p{i}": f"item {i} is about topic {i % 5}" for i in range(6)},
      "relevant_contexts": {f"q{i}": [f"p{i}"] for i in range(6)}}
SETTINGS = dict(epochs=1, batch_size=8, matryoshka_dims=None, eval_steps=None, seed=3)


def _quiet(*args, **kwargs):
    pass


def test_in_memory_data_trains_like_the_same_files_on_the_command_line(tiny_bert_folder, tmp_path):
    result = embedder.fit(base=str(tiny_bert_folder), train=PAIRS, eval=IR, output=str(tmp_path / "api"),
                          echo=_quiet, **SETTINGS)
    assert isinstance(result.model, embedder.Embedder) and result.output == str(tmp_path / "api")
    assert set(result.metrics) == set(result.base_metrics) and "general_stdlib_test_cosine_map@100" in result.metrics
    assert len([k for k in result.metrics if not k.startswith("general_")]) == 30
    assert result.config.select_metric == "cosine_map@100" and result.config.dims is None

    pairs_file, ir_file = tmp_path / "pairs.jsonl", tmp_path / "val.json"
    pairs_file.write_text("".join(json.dumps({"anchor": a, "positive": p}) + "\n" for a, p in PAIRS))
    ir_file.write_text(json.dumps(IR))
    cli = subprocess.run([sys.executable, str(REPO / "train.py"), "--base", str(tiny_bert_folder), "--train",
                          str(pairs_file), "--eval", str(ir_file), "--output", str(tmp_path / "cli"), "--epochs", "1",
                          "--batch-size", "8", "--matryoshka-dims", "none", "--seed", "3", "--eval-steps", "1000"],
                         capture_output=True, text=True, timeout=600)
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert (tmp_path / "api" / "model.safetensors").read_bytes() == (tmp_path / "cli" / "model.safetensors").read_bytes()
    # the metrics returned are the saved model's, as evaluate.py scores it
    assert f"{result.metrics['cosine_map@100']:.4f}" in cli.stdout
    changes = [json.loads(line) for line in (tmp_path / "api" / "per_query_changes.jsonl").read_text().splitlines()]
    assert sorted(row["query_id"] for row in changes) == sorted(IR["questions"])  # issue 15 item 4
    improved = sum(row["change"] < 0 for row in changes)
    assert f"per query: {improved} of 6 improved" in cli.stdout
    saved = json.loads((tmp_path / "api" / "train_config.json").read_text())
    assert saved["train"] == ["train (in memory)"] and saved["batch_size"] == 8 and saved["resolved"]["global_batch"] == 8


def test_a_list_of_paths_and_records(tiny_bert_folder, tmp_path):
    first, second = tmp_path / "a.jsonl", tmp_path / "b.csv"
    first.write_text("".join(json.dumps({"anchor": a, "positive": p}) + "\n" for a, p in PAIRS[:12]))
    second.write_text("anchor,positive\n" + "".join(f"{a},{p}\n" for a, p in PAIRS[12:]))
    result = embedder.fit(base=str(tiny_bert_folder), train=[str(first), second], eval=None,
                          output=str(tmp_path / "m"), echo=_quiet, **{**SETTINGS, "batch_size": 4})
    assert result.metrics == {} and (tmp_path / "m" / "model.safetensors").is_file()
    records = [{"anchor": a, "positive": p, "negative": PAIRS[(i + 1) % len(PAIRS)][1]} for i, (a, p) in
               enumerate(PAIRS)]
    result = embedder.fit(base=str(tiny_bert_folder), train=records, output=str(tmp_path / "n"), echo=_quiet,
                          **SETTINGS)
    assert result.config.hard_negative_columns == 1 and result.config.negatives_per_query == 7 + 8


@pytest.mark.parametrize("train, eval, message", [
    ([("q", "p"), ("q2", "")], IR, "train (in memory): row 2 text 2 is empty; remove the record or fill in the text"),
    ([("q", "p"), ("q2", "p2", "n2")], IR, "train (in memory): row 2 has 3 texts, row 1 has 2"),
    ([("q", 7)], IR, "train (in memory): row 1 text 2 is int, not text"),
    (["only one text per row"], IR, "no such file"),  # a list of strings is a list of paths
    (PAIRS, {"questions": {"q": "x"}, "relevant_contexts": {}}, "eval (in memory): missing key 'corpus'"),
    (PAIRS, {**IR, "relevant_contexts": {"q0": ["nope"]}}, "names relevant passage 'nope', which is not in corpus"),
    (PAIRS, [("q", "p")], "eval (in memory): is a list; evaluation data must be an IR dict"),
    ([], IR, "--train (): out of range, give one or more data files"),
], ids=["empty-text", "ragged", "not-text", "string-rows", "ir-missing-key", "ir-bad-id", "eval-pairs", "empty"])
def test_bad_in_memory_data_is_one_user_error(tiny_bert_folder, tmp_path, train, eval, message):
    with pytest.raises(embedder.UserError) as err:
        embedder.fit(base=str(tiny_bert_folder), train=train, eval=eval, output=str(tmp_path / "m"), echo=_quiet)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "m").exists()


def test_the_same_mistake_in_a_file_reads_the_same(tmp_path):
    """The in-memory message names the data the way the CLI names the file, the rest is the same words."""
    bad = {**IR, "relevant_contexts": {"q0": ["nope"]}}
    (tmp_path / "val.json").write_text(json.dumps(bad))
    cli = subprocess.run([sys.executable, str(REPO / "train.py"), "--base", "all-MiniLM-L6-v2", "--eval",
                          str(tmp_path / "val.json"), "--output", str(tmp_path / "m")], capture_output=True, text=True,
                         timeout=300)
    with pytest.raises(embedder.UserError) as err:
        embedder.fit(base="all-MiniLM-L6-v2", eval=bad, output=str(tmp_path / "m"), echo=_quiet)
    assert cli.returncode == 2
    file_message = cli.stderr.strip().split(f"{tmp_path / 'val.json'}: ", 1)[1]
    assert str(err.value).split("eval (in memory): ", 1)[1] == file_message


def test_unknown_setting_names_the_fields():
    with pytest.raises(embedder.UserError, match="fit\\(\\): unknown setting 'learning_rate'.*lr"):
        embedder.fit(base="all-MiniLM-L6-v2", train=PAIRS, learning_rate=1e-5)


def test_the_readme_example_runs(tmp_path):
    text = (REPO / "README.md").read_text()
    block = text.split("<!-- tests/train/test_fit.py runs this block -->\n```python\n", 1)[1].split("```", 1)[0]
    run = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    before, after = (float(x) for x in run.stdout.strip().splitlines()[-1].split("saved to")[0].split("->"))
    assert 0 < before < 1 and 0 < after < 1 and (tmp_path / "out" / "minilm-api" / "modules.json").is_file()


def test_train_eval_overlap_is_warned_with_counts(tiny_bert_folder, tmp_path):
    """Issue 15 item 5: eval questions equal to training anchors, eval passages equal to training positives."""
    messages = []
    embedder.fit(base=str(tiny_bert_folder), train=PAIRS, eval=IR, output=str(tmp_path / "m"), max_steps=1,
                 echo=lambda *a, err=False, **k: messages.append((err, " ".join(map(str, a)))), **SETTINGS)
    # IR's 6 questions are PAIRS' first 6 anchors; its 6 passages are their positives
    assert (True, "WARNING: eval (in memory): 6 of 6 eval questions are training anchors and 6 of 6 eval passages "
                  "are training positives; the metrics are inflated: evaluate on held-out questions") in messages
    held_out = {**IR, "questions": {qid: text + " (asked differently)" for qid, text in IR["questions"].items()}}
    messages.clear()
    embedder.fit(base=str(tiny_bert_folder), train=PAIRS, eval=held_out, output=str(tmp_path / "n"), max_steps=1,
                 echo=lambda *a, err=False, **k: messages.append((err, " ".join(map(str, a)))), **SETTINGS)
    assert [m for err, m in messages if err and "eval questions" in m] == \
        ["WARNING: eval (in memory): 0 of 6 eval questions are training anchors and 6 of 6 eval passages are training "
         "positives; the metrics are inflated: evaluate on held-out questions"]


def test_pairs_alone_are_validated_on_passages_held_out_from_them(tiny_bert_folder, tmp_path):
    """500 pairs over 250 passages and no eval: 50 questions of 25 passages are held out (a tenth, by passage),
    the base model and every checkpoint are scored on them, the forgetting check runs, the card names the set."""
    pairs = [(f"question {k} on part {i}?", f"part {i} says {i % 7} and {i % 11}") for i in range(250) for k in (0, 1)]
    lines = []
    result = embedder.fit(base=str(tiny_bert_folder), train=pairs, output=str(tmp_path / "m"), max_steps=2,
                          echo=lambda *a, **k: lines.append(" ".join(map(str, a))), **SETTINGS)
    assert any(line.startswith("validation: 50 questions of 25 passages held out") for line in lines)
    assert result.config.settings.validation_split == 0.1 and result.config.select_metric == "cosine_map@100"
    assert "cosine_map@100" in result.base_metrics and "general_stdlib_test_cosine_map@100" in result.metrics
    assert any(line.startswith("verdict: ") for line in lines)
    card = (tmp_path / "m" / "README.md").read_text()
    assert "Evaluated on: `validation held out from train (in memory)` (50 queries, 25 passages)" in card
    trained = json.loads((tmp_path / "m" / "train_config.json").read_text())
    assert trained["validation_split"] == 0.1


def test_fewer_pairs_than_fifty_held_out_questions_train_on_every_pair(tiny_bert_folder, tmp_path):
    lines = []
    result = embedder.fit(base=str(tiny_bert_folder), train=PAIRS, output=str(tmp_path / "m"), max_steps=1,
                          echo=lambda *a, **k: lines.append(" ".join(map(str, a))), **SETTINGS)
    assert any(line.startswith("validation: none held out") for line in lines)
    assert result.metrics == {} and result.config.select_metric is None
    assert "training pairs: 24 in 1 set(s)" in "\n".join(lines)
