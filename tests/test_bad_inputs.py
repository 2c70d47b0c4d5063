"""Bad input, tried systematically on train.py and evaluate.py: each case must exit 2 with one line on stderr that
names the file or flag, no traceback, and nothing written (the output folder is not even created)."""

import json
import shutil
import subprocess
import sys

from conftest import REPO

GOOD_IR = {"questions": {"q1": "What is A?", "q2": "What is B?"}, "corpus": {"p1": "A is first.", "p2": "B is second."},
           "relevant_contexts": {"q1": ["p1"], "q2": ["p2"]}}


def _files(tmp, minilm_folder):
    """name -> (path written in tmp, fragment the error must contain)."""
    def write(name, content):
        path = tmp / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        return path

    (tmp / "a_folder").mkdir()
    no_weights = tmp / "model_without_weights"
    shutil.copytree(minilm_folder, no_weights)
    (no_weights / "model.safetensors").unlink()
    corrupt = tmp / "model_with_corrupt_weights"
    shutil.copytree(minilm_folder, corrupt)
    (corrupt / "model.safetensors").write_bytes(b"not a safetensors file" * 100)
    return {
        "missing": (tmp / "missing.json", "no such file"),
        "directory": (tmp / "a_folder", "is a directory"),
        "empty": (write("empty.json", ""), "is empty"),
        "truncated": (write("truncated.json", json.dumps(GOOD_IR)[:40]), "invalid JSON"),
        "garbage": (write("garbage.json", bytes(range(256)) * 4), "a binary file, not a text data file"),
        "latin1": (write("latin1.json", json.dumps(GOOD_IR).replace("A is", "Ä is").encode("latin-1")), "not UTF-8"),
        "no_positive": (write("nopos.csv", "anchor,answer\nq,a\n"), "missing column 'positive'"),
        "empty_text": (write("emptytext.json", json.dumps(dict(GOOD_IR, questions={"q1": "", "q2": "B?"}))),
                       "1 of 4 records are unusable (empty text: question 'q1'), more than 5%"),
        "duplicate_ids": (write("dup.json", '{"questions": {"q1": "a", "q1": "b"}, "corpus": {"p1": "x"}, '
                                            '"relevant_contexts": {"q1": ["p1"]}}'), "appears twice"),
        "absent_id": (write("absent.json", json.dumps(dict(GOOD_IR, relevant_contexts={"q1": ["p9"]}))), "not in corpus"),
        "no_weights": (no_weights, "holds no weights"),
        "corrupt_weights": (corrupt, "could not be read"),
    }


DATA_CASES = ["missing", "directory", "empty", "truncated", "garbage", "latin1", "no_positive", "empty_text",
              "duplicate_ids", "absent_id"]


def _run(script, args, cwd):
    return subprocess.run([sys.executable, str(REPO / script), *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


def _check(result, fragment, cwd, before):
    assert result.returncode == 2, (result.stdout[-800:], result.stderr[-1500:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0] and "Traceback" not in result.stderr
    assert sorted(p.name for p in cwd.iterdir()) == before  # nothing written


def _cases(tmp_path, minilm_folder):
    files = _files(tmp_path, minilm_folder)
    train_cases = [(f"train-{name}", ["--train", str(files[name][0])], files[name][1]) for name in DATA_CASES]
    eval_cases = [(f"eval-{name}", ["--data", str(files[name][0])], files[name][1])
                  for name in DATA_CASES if name != "no_positive"]
    small = tmp_path / "three_pairs.csv"
    small.write_text("anchor,positive\na,b\nc,d\ne,f\n")
    train_cases += [
        ("smaller-than-batch", ["--train", str(small), "--batch-size", "8"], "fewer than one batch"),
        ("batch-zero", ["--batch-size", "0"], "--batch-size 0"),
        ("batch-negative", ["--batch-size", "-3"], "--batch-size -3"),
        ("unknown-model", ["--base", "no-such-model-abc"], "unknown model"),
        ("no-weights", ["--base", str(files["no_weights"][0])], "holds no weights"),
        ("corrupt-weights", ["--base", str(files["corrupt_weights"][0])], "could not be read"),
        ("unwritable-output", ["--output", "/proc/embedder-test/out"], "--output"),
        ("weights-not-numbers", ["--matryoshka-weights", "1,a"], "--matryoshka-weights"),
        ("weights-count", ["--matryoshka-dims", "384,256,128,64", "--matryoshka-weights", "1,2"],
         "2 Matryoshka weights for 4 dims"),
        ("weights-with-auto-on-minilm", ["--matryoshka-weights", "1,2"], "Matryoshka is off"),
        ("weights-without-dims", ["--matryoshka-dims", "none", "--matryoshka-weights", "1"], "Matryoshka is off"),
    ]
    eval_cases += [
        ("batch-zero", ["--batch-size", "0"], "--batch-size 0"),
        ("batch-negative", ["--batch-size", "-1"], "--batch-size -1"),
        ("unknown-model", ["--model", "no-such-model-abc"], "unknown model"),
        ("no-weights", ["--model", str(files["no_weights"][0])], "holds no weights"),
        ("corrupt-weights", ["--model", str(files["corrupt_weights"][0])], "could not be read"),
        ("unwritable-json", ["--json", "/proc/embedder-test/out.json"], "--json"),
    ]
    return train_cases, eval_cases


def _run_all(script, cases, defaults, cwd):
    """Run every case (adding each default flag the case does not set); collect every failure, not just the first."""
    before = sorted(p.name for p in cwd.iterdir())
    failures = []
    for name, args, fragment in cases:
        extra = [item for flag, value in defaults for item in (flag, value) if flag not in args]
        try:
            _check(_run(script, [*extra, *args], cwd), fragment, cwd, before)
        except AssertionError as err:
            failures.append(f"{name}: {err}")
    assert not failures, "\n".join(failures)


def test_train_py_bad_inputs(tmp_path, minilm_folder):
    train_cases, _ = _cases(tmp_path, minilm_folder)
    _run_all("train.py", train_cases, [("--base", "all-MiniLM-L6-v2"), ("--output", str(tmp_path / "out")),
                                       ("--eval", "none"), ("--max-steps", "1")], tmp_path)


def test_evaluate_py_bad_inputs(tmp_path, minilm_folder, ir_data_dir):
    _, eval_cases = _cases(tmp_path, minilm_folder)
    _run_all("evaluate.py", eval_cases, [("--model", "all-MiniLM-L6-v2"), ("--data", str(ir_data_dir / "val.json"))],
             tmp_path)


def test_impossible_flags_and_endless_inputs(tmp_path, tiny_bert_folder):
    """Flags that parse but cannot work, a half-set torchrun environment, inputs that never end, and files that
    used to be read silently wrong: one line each, exit 2, nothing written (tests/battery.py)."""
    import os

    import torch
    from battery import run_cases

    work = tmp_path / "work"
    work.mkdir()
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"anchor": f"q {i}", "positive": f"p {i}"}) + "\n" for i in range(32)))
    ir = tmp_path / "ir.json"
    ir.write_text(json.dumps(GOOD_IR))
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    unclosed = tmp_path / "unclosed.csv"
    unclosed.write_text("anchor,positive\n" + "".join(f"q{i},p{i}\n" for i in range(10)) + 'q10,"p10 never closed\n'
                        + "".join(f"q{i},p{i}\n" for i in range(11, 40)))
    empty_pos = tmp_path / "flag.jsonl"
    empty_pos.write_text("".join(json.dumps({"query": f"q{i}", "pos": [f"p{i}"] if i != 5 else [], "neg": []}) + "\n"
                                 for i in range(32)))
    ir_list = tmp_path / "list.json"
    ir_list.write_text(json.dumps([{"anchor": "q", "positive": "p"}]))
    pairs_csv = tmp_path / "pairs.csv"
    pairs_csv.write_text("anchor,positive\nq,p\n")

    train = ["train.py", "--base", str(tiny_bert_folder), "--train", str(pairs), "--eval", "none", "--max-steps", "1",
             "--batch-size", "8", "--output", str(work / "out")]
    evaluate = ["evaluate.py", "--model", str(tiny_bert_folder)]
    flags = [("--lr", "inf"), ("--lr", "nan"), ("--lr", "-1"), ("--scale", "inf"), ("--scale", "0"),
             ("--weight-decay", "-1"), ("--weight-decay", "nan"), ("--max-grad-norm", "inf"), ("--warmup-ratio", "nan"),
             ("--save-total-limit", "-1"), ("--save-total-limit", "0"), ("--seed", str(2**64)), ("--seed", "-1"),
             ("--eval-steps", "0"), ("--matryoshka-weights", "nan,1,1,1"), ("--mini-batch-size", "0")]
    cases = [(f"{flag} {value}", [*train, flag, value], flag) for flag, value in flags]
    cases += [
        ("--epochs past planning without --max-steps", [a for a in train if a not in ("--max-steps", "1")]
         + ["--epochs", str(10**9)], "--epochs"),
        ("--max-seq-length past positions", [*train, "--max-seq-length", "100000"], "--max-seq-length 100000"),
        ("--device that does not exist", [*train, "--device", "tpu:9"], "--device"),
        ("--device nonsense", [*train, "--device", "fast"], "--device"),
        ("evaluate --device nonsense", [*evaluate, "--data", str(ir), "--device", "fast"], "--device"),
        ("WORLD_SIZE without RANK", train, "torchrun environment", {"env": {"WORLD_SIZE": "2"}}),
        ("WORLD_SIZE not a number", train, "WORLD_SIZE", {"env": {"WORLD_SIZE": "two"}}),
        ("--train /dev/zero", [*train, "--train", "/dev/zero"], "not a regular file"),
        ("--train a FIFO", [*train, "--train", str(fifo)], "not a regular file"),
        ("evaluate --data /dev/zero", [*evaluate, "--data", "/dev/zero"], "not a regular file"),
        ("--train CSV with an unclosed quote", [*train, "--train", str(unclosed)], "line 12"),
        ("--train FlagEmbedding record with empty pos", [*train, "--train", str(empty_pos)], "record 6 has an empty 'pos'"),
        ("evaluate --data a JSON list", [*evaluate, "--data", str(ir_list)], "needs an IR set"),
        ("evaluate --data a CSV", [*evaluate, "--data", str(pairs_csv)], "needs an IR set"),
        ("train --eval pairs", [a if a != "none" else str(pairs) for a in train], "needs an IR set"),
        ("--select-metric without --eval", [*train, "--select-metric", "cosine_map@100"], "no evaluation data"),
        ("mine --margin nan", ["-m", "embedder.mine", "--model", str(tiny_bert_folder), "--data", str(ir), "--out",
                               str(work / "mined.jsonl"), "--margin", "nan"], "--margin"),
    ]
    if not torch.cuda.is_available():
        cases.append(("--device cuda without a GPU", [*train, "--device", "cuda"], "no usable CUDA GPU"))
    run_cases(cases, work)


def test_typo_in_a_model_name_and_several_mistakes_at_once(tmp_path):
    """A mistyped packaged name gets "did you mean"; a run with several cheap-to-find mistakes (an output that
    exists, a missing --train file, a CSV as --eval) reports each on its own line, before loading anything."""
    from battery import run

    typo = run(["train.py", "--base", "all-MiniLM-L6v2", "--output", str(tmp_path / "out")], tmp_path,
               env={"HF_HUB_OFFLINE": "1"})
    assert typo.returncode == 2 and typo.stderr.strip().count("\n") == 0, typo.stderr
    assert "did you mean all-MiniLM-L6-v2?" in typo.stderr and "pip install" not in typo.stderr

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "modules.json").write_text("[]")
    (tmp_path / "pairs.csv").write_text("anchor,positive\nq,p\n")
    several = run(["train.py", "--base", "all-MiniLM-L6-v2", "--output", str(tmp_path / "out"), "--train",
                   str(tmp_path / "missing.jsonl"), "--eval", str(tmp_path / "pairs.csv")], tmp_path)
    lines = several.stderr.strip().splitlines()
    assert several.returncode == 2 and "Traceback" not in several.stderr and len(lines) == 3, several.stderr
    assert all(line.startswith("error: ") for line in lines)
    assert "already holds a model" in lines[0] and "no such file" in lines[1] and "needs an IR set" in lines[2]
