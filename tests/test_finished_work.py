"""Finished work is never thrown away. Every check of the output happens before step 1; a signal during training
saves a checkpoint; once training is done, its result is checkpointed first, so an interrupt in the final
evaluation or a failing final write keeps it, says where in one line, and `--resume` then writes the model.
Faults are planted at exact phases by tests/fault_wrapper.py (a real signal to the process, a real ENOSPC error)."""

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from battery import REPO, check, listing, run, run_cases
from safetensors.torch import load_file, save_file

PAIRS = [{"anchor": f"question {i}", "positive": f"passage {i} " * (1 + i % 4)} for i in range(32)]
IR = {"questions": {"q1": "What is A?", "q2": "What is B?"}, "corpus": {"p1": "A is first.", "p2": "B is second."},
      "relevant_contexts": {"q1": ["p1"], "q2": ["p2"]}}


@pytest.fixture
def data(tmp_path):
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in PAIRS))
    (tmp_path / "val.json").write_text(json.dumps(IR))
    return tmp_path


def _train_args(model, data, out, *extra):
    return ["train.py", "--base", str(model), "--train", str(data / "pairs.jsonl"), "--eval", str(data / "val.json"),
            "--batch-size", "8", "--epochs", "1", "--matryoshka-dims", "none", "--keep-last", "--output", str(out),
            *extra]


def _embed_checkpoint(base, checkpoint, texts):
    import embedder
    model = embedder.load(str(base), device="cpu")
    model.load_state_dict(load_file(str(checkpoint / "model.safetensors")))
    return model.encode(texts)


@pytest.mark.parametrize("fault", ["sigint-in-final-eval", "sigterm-in-final-eval", "disk-full-at-save"])
def test_after_training_an_interrupt_or_failed_write_keeps_the_model(fault, tiny_bert_folder, data):
    import embedder
    out = data / "model"
    old = None
    if fault == "disk-full-at-save":  # replacing an earlier model, which must survive the failed write
        shutil.copytree(tiny_bert_folder, out)
        old = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    args = _train_args(tiny_bert_folder, data, out, *(["--overwrite"] if old else []))
    result = run(args, data, wrap=fault)
    check(result, "safe in checkpoint", exit_code=1)
    checkpoint = data / "model.checkpoints" / "step-4"
    assert str(checkpoint) in result.stderr and (checkpoint / "model.safetensors").is_file()
    if old is None:
        assert not out.exists()
    else:
        assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == old
    assert not [p.name for p in data.iterdir() if p.name.startswith(".")]  # no staging folder left behind

    texts = ["passage 3 passage 3", "question 7"]
    trained = _embed_checkpoint(tiny_bert_folder, checkpoint, texts)
    assert np.abs(trained - embedder.load(str(tiny_bert_folder), device="cpu").encode(texts)).max() > 1e-4  # it did train
    first_base = next(line for line in result.stdout.splitlines() if line.startswith("base cosine_map@100"))
    resumed = run([*args, "--resume"], data)
    assert resumed.returncode == 0, resumed.stderr[-1500:]
    # the before/after table keeps the base model's metrics from the first start, not the checkpoint's
    assert "evaluating the base model" not in resumed.stdout and first_base in resumed.stdout
    saved = embedder.load(str(out), device="cpu").encode(texts)
    assert np.abs(saved - trained).max() <= 1e-6
    assert not (data / "model.checkpoints").exists()  # the safeguard checkpoint goes once the model is written


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_training_saves_a_checkpoint(signal_number, tiny_bert_folder, data):
    out = data / "model"
    process = subprocess.Popen([sys.executable, str(REPO / "train.py"), "--base", str(tiny_bert_folder), "--train",
                                str(data / "pairs.jsonl"), "--eval", "none", "--batch-size", "8", "--epochs",
                                "100000", "--output", str(out)], cwd=data, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    log = data / "model.checkpoints" / "training_log.jsonl"
    deadline = time.time() + 300
    while not (log.exists() and '"loss"' in log.read_text()) and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal_number)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 1 and len(stderr.strip().splitlines()) == 1, stderr[-1500:]
    assert "interrupted at step" in stderr and signal_number.name in stderr and "--resume" in stderr
    folder = Path(stderr.split("checkpoint saved to ")[1].split(";")[0])
    assert folder.parent == data / "model.checkpoints" and (folder / "model.safetensors").is_file()
    assert not out.exists()


def test_failures_known_before_step_one_end_with_one_line(tmp_path, tiny_bert_folder, data):
    """Output locations the OS rejects, too little disk, NaN weights and a loss that is never finite: one line,
    nothing written (the model folder), before or instead of training."""
    work = tmp_path / "work"
    work.mkdir()
    nan_model = tmp_path / "nan-model"
    shutil.copytree(tiny_bert_folder, nan_model)
    weights = load_file(str(nan_model / "model.safetensors"))
    name = next(k for k in weights if k.endswith("attention.self.query.weight"))
    weights[name] = torch.full_like(weights[name], float("nan"))
    save_file(weights, str(nan_model / "model.safetensors"))

    def train(*extra, base=tiny_bert_folder):
        return ["train.py", "--base", str(base), "--train", str(data / "pairs.jsonl"), "--eval", "none",
                "--batch-size", "8", "--max-steps", "2", *extra]

    cases = [
        ("output is .", train("--output", "."), "--output"),
        ("output is ..", train("--output", "sub/.."), "--output"),
        ("output name too long", train("--output", str(work / ("n" * 300))), "refuses this path"),
        ("output name too long deeper", train("--output", str(work / ("n" * 300) / "model")), "refuses this path"),
        ("disk nearly full", train("--output", str(work / "m1")), "MiB free", {"wrap": "disk-nearly-full"}),
        ("NaN base weights", train("--output", str(work / "m2"), base=nan_model), "NaN"),
        ("no finite step", train("--output", str(work / "m3")), "no training step had a finite loss",
         {"wrap": "nan-loss", "exit_code": 1}),
    ]
    before = listing(work)
    run_cases(cases, work, watched=tmp_path / "nothing", workers=3)
    assert [p for p in listing(work) if not p.startswith("m3.checkpoints")] == before  # no model anywhere


def test_a_signal_before_training_leaves_no_model(tiny_bert_folder, data):
    result = run(_train_args(tiny_bert_folder, data, data / "model"), data, wrap="sigterm-in-base-eval")
    check(result, "before the first training step; no model was written", exit_code=143)
    assert not (data / "model").exists()
