"""Runs that cannot learn are refused before step 1 (embedder/train/preflight.py), each in one line, exit 2, nothing
written: no negatives at all, batches of one pair, a prompt that fills max_seq_length, a model whose weights do
not cover its architecture (embedder/model/auto_model.py). A hard negative equal to its own positive drops its row
with one warning that counts them, and the run trains on the rest. Each case is a subprocess (tests/battery.py)."""

import json
import shutil

from battery import run, run_cases

PAIRS = [{"anchor": f"question {i}", "positive": f"passage {i} " * (1 + i % 4)} for i in range(32)]


def test_runs_that_cannot_learn_are_refused(tiny_bert_folder, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in PAIRS))
    (data / "copies.jsonl").write_text("".join(json.dumps(PAIRS[0]) + "\n" for _ in range(8)))
    llama = data / "llama-config-over-bert-weights"
    shutil.copytree(tiny_bert_folder, llama)
    config = json.loads((llama / "config.json").read_text())
    (llama / "config.json").write_text(json.dumps({**config, "model_type": "llama", "architectures": ["LlamaModel"]}))
    (data / "ir.json").write_text(json.dumps({"questions": {"q": "question 1"}, "corpus": {"p": "passage 1"},
                                              "relevant_contexts": {"q": ["p"]}}))
    work = tmp_path / "work"
    work.mkdir()

    def train(*args, base=tiny_bert_folder):
        return ["train.py", "--base", str(base), "--eval", "none", "--epochs", "1", "--matryoshka-dims", "none",
                "--output", str(work / "out"), *args]
    cases = [
        ("batch of one, no negative column", train("--train", str(data / "pairs.jsonl"), "--batch-size", "1"),
         "--batch-size 1: no query has a negative"),
        ("8 copies of one pair", train("--train", str(data / "copies.jsonl"), "--batch-size", "4"),
         "every batch holds a single pair"),
        ("a query prompt that fills max_seq_length", train("--train", str(data / "pairs.jsonl"), "--batch-size", "4",
                                                           "--max-seq-length", "16", "--query-prompt", "word " * 40),
         "--query-prompt 'word word"),
        ("a llama config over BERT weights (train.py)", train("--train", str(data / "pairs.jsonl"), base=llama),
         "the weights do not fit its architecture (llama)"),
        ("a llama config over BERT weights (evaluate.py)", ["evaluate.py", "--model", str(llama), "--data",
                                                            str(data / "ir.json")],
         "the weights do not fit its architecture (llama)"),
    ]
    run_cases(cases, work)


def test_a_negative_equal_to_its_positive_drops_its_row_with_a_warning(tiny_bert_folder, tmp_path):
    rows = [{**row, "negative": PAIRS[(i + 1) % len(PAIRS)]["positive"]} for i, row in enumerate(PAIRS)]
    rows[3]["negative"] = rows[3]["positive"]
    rows[20]["negative"] = rows[20]["positive"]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = run(["train.py", "--base", str(tiny_bert_folder), "--train", str(tmp_path / "pairs.jsonl"), "--eval",
                  "none", "--epochs", "1", "--batch-size", "8", "--matryoshka-dims", "none", "--output",
                  str(tmp_path / "out")], tmp_path)
    assert result.returncode == 0, result.stderr[-1500:]
    warnings = [line for line in result.stderr.splitlines() if "negative equal to their positive" in line]
    assert warnings == [f"WARNING: {tmp_path / 'pairs.jsonl'}: 2 of 32 rows have a negative equal to their positive "
                        "(rows 4, 21); they were left out"]
    assert "training pairs: 30 in 1 set(s)" in result.stdout
