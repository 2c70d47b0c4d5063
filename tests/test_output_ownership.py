"""A run owns its output from start to end, and the final write is all or nothing (embedder/ownership.py): a second
run on the same --output is refused naming the first; a folder that appears at --output while a run trains
survives and the run says where its model went; a SIGKILL at any phase of the final save leaves --output as the old
complete model or the new complete one, and the next run removes what the killed one left; a full disk while a
checkpoint is written, or an interrupt anywhere after step 1, is one line and keeps the trained steps. Each case is
a subprocess through train.py, with faults planted at exact phases by tests/fault_wrapper.py."""

import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from battery import REPO, check, run
from sentence_transformers import SentenceTransformer

PAIRS = [{"anchor": f"question {i}", "positive": f"passage {i} " * (1 + i % 4)} for i in range(32)]
IR = {"questions": {"q1": "What is A?", "q2": "What is B?"}, "corpus": {"p1": "A is first.", "p2": "B is second."},
      "relevant_contexts": {"q1": ["p1"], "q2": ["p2"]}}
MODEL_FILES = {"modules.json", "config.json", "model.safetensors", "README.md", "train_config.json",
               "training_log.jsonl", "sentence_bert_config.json", "tokenizer.json"}


@pytest.fixture
def data(tmp_path):
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in PAIRS))
    (tmp_path / "val.json").write_text(json.dumps(IR))
    return tmp_path


def _args(model, data, out, *extra, eval=True):
    return ["train.py", "--base", str(model), "--train", str(data / "pairs.jsonl"), "--eval",
            str(data / "val.json") if eval else "none", "--batch-size", "8", "--epochs", "1", "--matryoshka-dims",
            "none", "--output", str(out), *extra]


def _leftovers(folder, name="model"):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{name}."))


def _is_complete_model(folder, max_steps):
    """Every file a finished run writes, and the settings of the run that wrote it."""
    names = {p.name for p in folder.iterdir()}
    return MODEL_FILES <= names and json.loads((folder / "train_config.json").read_text())["max_steps"] == max_steps


def test_a_second_run_on_the_same_output_is_refused_naming_the_first(tiny_bert_folder, data):
    out = data / "model"
    first = subprocess.Popen([sys.executable, str(REPO / "tests" / "fault_wrapper.py"), "wait-in-final-eval",
                              str(REPO / "train.py"), *_args(tiny_bert_folder, data, out)[1:]],
                             cwd=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    lock = data / ".model.lock"
    deadline = time.time() + 300
    while not (lock.exists() and lock.read_text().strip()) and time.time() < deadline and first.poll() is None:
        time.sleep(0.02)
    second = run(_args(tiny_bert_folder, data, out), data)  # while the first holds the output (it waits for GO)
    (data / "GO").write_text("")
    _, first_err = first.communicate(timeout=600)
    assert first.returncode == 0, first_err[-1500:]
    check(second, f"is being written by another run (pid {first.pid})")
    texts = ["question 3", "passage 5"]
    import embedder
    assert np.abs(SentenceTransformer(str(out), device="cpu").encode(texts)
                  - embedder.load(str(out), device="cpu").encode(texts)).max() <= 1e-5  # one model, and it loads in ST
    assert not lock.exists() and _leftovers(data) == []
    (data / "GO").unlink()


def test_a_folder_created_at_the_output_mid_run_survives(tiny_bert_folder, data):
    out = data / "model"
    result = run(_args(tiny_bert_folder, data, out), data, wrap="folder-at-output-in-final-eval")
    check(result, "was written by something else while this run trained", exit_code=1)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"
    checkpoint = data / "model.checkpoints" / "step-4"
    assert str(checkpoint) in result.stderr and (checkpoint / "model.safetensors").is_file()
    shutil.move(out, data / "mine")  # as the message says: move it away, then --resume
    resumed = run(_args(tiny_bert_folder, data, out, "--resume"), data)
    assert resumed.returncode == 0, resumed.stderr[-1500:]
    assert _is_complete_model(out, None) and (data / "mine" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("replacing", [False, True], ids=["new output", "--overwrite"])
@pytest.mark.parametrize("fault", ["kill-before-settle", "kill-before-swap", "kill-after-swap"])
def test_a_kill_during_the_final_save_leaves_the_old_or_the_new_model(fault, replacing, tiny_bert_folder, data):
    out = data / "model"
    if replacing:
        first = run(_args(tiny_bert_folder, data, out, "--max-steps", "1"), data)
        assert first.returncode == 0 and _is_complete_model(out, 1), first.stderr[-1500:]
    killed = run(_args(tiny_bert_folder, data, out, "--max-steps", "2", *(["--overwrite"] if replacing else [])),
                 data, wrap=fault)
    assert killed.returncode == -9, killed.stderr[-1500:]
    if fault == "kill-after-swap":
        assert _is_complete_model(out, 2)  # the new model, whole
    elif replacing:
        assert _is_complete_model(out, 1)  # the old model, whole
    else:
        assert not out.exists()
    again = run(_args(tiny_bert_folder, data, out, "--max-steps", "2", "--overwrite" if out.exists() else "--resume"),
                data)
    assert again.returncode == 0, again.stderr[-1500:]
    assert _is_complete_model(out, 2) and _leftovers(data) == []  # no staging folder outlives the next run


def test_a_full_disk_at_a_checkpoint_is_one_line_and_keeps_the_earlier_one(tiny_bert_folder, data):
    out = data / "model"
    args = _args(tiny_bert_folder, data, out, "--save-steps", "2", eval=False)
    result = run(args, data, wrap="disk-full-at-second-checkpoint")
    check(result, "no space left on the device for", exit_code=1)
    line = result.stderr.strip()
    assert str(data / "model.checkpoints" / "step-4") in line and " MiB" in line and "step-2" in line
    kept = data / "model.checkpoints" / "step-2"
    assert {p.name for p in kept.iterdir()} >= {"model.safetensors", "optimizer.pt", "trainer_state.json"}
    assert _leftovers(data / "model.checkpoints", "step-4") == [] and not out.exists()
    resumed = run([*args, "--resume"], data)
    assert resumed.returncode == 0 and "resumed from" in resumed.stdout, resumed.stderr[-1500:]


@pytest.mark.parametrize("fault", ["sigint-in-last-step-eval", "sigint-after-loop"])
def test_an_interrupt_after_the_last_step_keeps_it_in_a_checkpoint(fault, tiny_bert_folder, data):
    out = data / "model"
    args = _args(tiny_bert_folder, data, out, "--max-steps", "2", "--eval-steps", "2", "--merge", "off")
    result = run(args, data, wrap=fault)
    check(result, "interrupted at step 2 (SIGINT): checkpoint saved to", exit_code=1)
    checkpoint = data / "model.checkpoints" / "step-2"
    assert str(checkpoint) in result.stderr and (checkpoint / "model.safetensors").is_file() and not out.exists()
    resumed = run([*args, "--resume"], data)
    assert resumed.returncode == 0, resumed.stderr[-1500:]
    assert _is_complete_model(out, 2)
