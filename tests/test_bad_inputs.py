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
        "garbage": (write("garbage.json", bytes(range(256)) * 4), "not UTF-8"),
        "latin1": (write("latin1.json", json.dumps(GOOD_IR).replace("A is", "Ä is").encode("latin-1")), "not UTF-8"),
        "no_positive": (write("nopos.csv", "anchor,answer\nq,a\n"), "missing column 'positive'"),
        "empty_text": (write("emptytext.json", json.dumps(dict(GOOD_IR, questions={"q1": "", "q2": "B?"}))), "is empty"),
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
        ("weights-count", ["--matryoshka-weights", "1,2"], "2 Matryoshka weights for 4 dims"),
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


def test_evaluate_py_bad_inputs(tmp_path, minilm_folder, aipolicy_dir):
    _, eval_cases = _cases(tmp_path, minilm_folder)
    _run_all("evaluate.py", eval_cases, [("--model", "all-MiniLM-L6-v2"), ("--data", str(aipolicy_dir / "val.json"))],
             tmp_path)
