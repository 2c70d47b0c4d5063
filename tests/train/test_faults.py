"""Faults during training: Ctrl-C (SIGINT) saves a checkpoint and exits cleanly; a loss that stays NaN stops the run
with one clear message and the last good checkpoint intact."""

import json
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import REPO

from embedder.train import checkpoints, trainer
from embedder.train.config import TrainConfig
from embedder.train.run import train


def _pairs(tmp_path, n=64):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({"anchor": f"question {i}", "positive": f"passage {i} " * (1 + i % 4)}) + "\n"
                            for i in range(n)))
    return path


def test_sigint_saves_a_checkpoint_and_exits_cleanly(tiny_bert_folder, tmp_path):
    out = tmp_path / "model"
    process = subprocess.Popen([sys.executable, str(REPO / "train.py"), "--base", str(tiny_bert_folder), "--train",
                                str(_pairs(tmp_path)), "--eval", "none", "--batch-size", "8", "--epochs", "100000",
                                "--output", str(out)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    log = tmp_path / "model.checkpoints" / "training_log.jsonl"
    deadline = time.time() + 300
    while not (log.exists() and '"loss"' in log.read_text()) and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 1, stderr[-1500:]
    assert "interrupted at step" in stderr and "--resume" in stderr and "Traceback" not in stderr
    saved = checkpoints.list_checkpoints(tmp_path / "model.checkpoints")
    assert saved and (saved[-1][1] / "model.safetensors").is_file()
    assert not out.exists()


def test_persistent_nan_stops_with_the_last_good_checkpoint(tiny_bert_folder, tmp_path, monkeypatch):
    real = trainer.loss_function
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        loss_of, weight = real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] > 4:  # steps 5, 6, 7… give NaN
            return (lambda embeddings: loss_of(embeddings) * float("nan")), weight
        return loss_of, weight

    monkeypatch.setattr(trainer, "loss_function", poisoned)
    config = TrainConfig(base=str(tiny_bert_folder), train=(str(_pairs(tmp_path)),), eval=(),
                         output=str(tmp_path / "model"), epochs=3, batch_size=8, matryoshka_dims=None, save_steps=2,
                         max_bad_steps=3)
    with pytest.raises(trainer.TrainingStopped, match=r"NaN/inf for 3 steps in a row at step 6.*step-4"):
        train(config, echo=lambda *a, **k: None)
    assert not (tmp_path / "model").exists()
    good = tmp_path / "model.checkpoints" / "step-4"
    state = json.loads((good / "trainer_state.json").read_text())
    weights = checkpoints.load_file(str(good / "model.safetensors"))
    assert state["step"] == 4 and all(torch.isfinite(t).all() for t in weights.values())


def test_a_nan_step_is_skipped_reported_and_the_run_goes_on(tiny_bert_folder, tmp_path, monkeypatch):
    """One NaN step: decided on the device, the update skipped, reported at the next logging step; the logged
    losses stay finite and the model is written."""
    real = trainer.loss_function
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        loss_of, weight = real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 3:
            return (lambda embeddings: loss_of(embeddings) * float("nan")), weight
        return loss_of, weight

    monkeypatch.setattr(trainer, "loss_function", poisoned)
    lines = []
    config = TrainConfig(base=str(tiny_bert_folder), train=(str(_pairs(tmp_path)),), eval=(),
                         output=str(tmp_path / "model"), epochs=1, batch_size=8, matryoshka_dims=None, logging_steps=4)
    result = train(config, echo=lambda *a, **k: lines.append(" ".join(map(str, a))))
    assert [line for line in lines if line.startswith("warning")] == \
        ["warning: 1 step(s) up to step 4 skipped: the loss was NaN/inf; the weights were not updated"]
    log = [json.loads(line) for line in (tmp_path / "model" / "training_log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log if "loss" in entry] == [4, 8] and all(
        torch.isfinite(torch.tensor(entry["loss"])) for entry in log if "loss" in entry)
    assert all(torch.isfinite(p).all() for p in result.model.parameters())


def test_save_total_limit_keeps_the_newest(tiny_bert_folder, tmp_path):
    config = TrainConfig(base=str(tiny_bert_folder), train=(str(_pairs(tmp_path, 40)),), eval=(),
                         output=str(tmp_path / "model"), epochs=1, batch_size=8, matryoshka_dims=None, save_steps=1,
                         save_total_limit=2)
    train(config, echo=lambda *a, **k: None)
    kept = [step for step, _ in checkpoints.list_checkpoints(tmp_path / "model.checkpoints")]
    assert kept == [4, 5]
    assert not [p for p in (tmp_path / "model.checkpoints").iterdir() if p.name.startswith(".")]  # no staging left
