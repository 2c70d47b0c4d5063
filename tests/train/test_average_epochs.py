"""--average-epochs (embedder/train/tracking.py): the saved model is the uniform average of the weights at the epoch
ends, worked out here from the run's own epoch-end checkpoints (θ̄ = (θ_6 + θ_12 + θ_18) / 3), and a run killed
after its second epoch and resumed saves the same model."""

import json

import pytest
import torch
from safetensors.torch import load_file

import embedder
from embedder.train.config import TrainConfig
from embedder.train.run import train

PAIRS = [(f"what is item {i} about?", f"item {i} is about topic {i % 5} and number {i}") for i in range(48)]
IR = {"questions": {f"q{i}": f"what is item {i} about?" for i in range(12)},
      "corpus": {f"p{i}": f"item {i} is about topic {i % 5} and number {i}" for i in range(48)},
      "relevant_contexts": {f"q{i}": [f"p{i}"] for i in range(12)}}


def config(base, output, **more) -> TrainConfig:
    # 48 pairs, batch 8: 6 steps an epoch; a checkpoint at every epoch end
    pairs, ir = output.parent / "pairs.jsonl", output.parent / "ir.json"
    pairs.write_text("".join(json.dumps({"anchor": a, "positive": p}) + "\n" for a, p in PAIRS))
    ir.write_text(json.dumps(IR))
    return TrainConfig(base=str(base), train=(str(pairs),), eval=(str(ir),), eval_general=(), output=str(output),
                       epochs=3,
                       batch_size=8, matryoshka_dims=None, eval_steps=4, lr=5e-4, merge="off", seed=11,
                       average_epochs=True, save_steps=6, **more)


def saved_state(folder) -> dict:
    return {k: v.float() for k, v in embedder.load(str(folder), device="cpu").state_dict().items()}


def test_the_saved_model_is_the_average_of_the_epoch_ends(tiny_bert_folder, tmp_path):
    lines = []
    train(config(tiny_bert_folder, tmp_path / "m"), echo=lambda *a, **k: lines.extend(map(str, a)))
    ends = [load_file(str(tmp_path / "m.checkpoints" / f"step-{step}" / "model.safetensors")) for step in (6, 12, 18)]
    by_hand = {k: (ends[0][k].float() + ends[1][k].float() + ends[2][k].float()) / 3 for k in ends[0]}
    saved = saved_state(tmp_path / "m")
    assert set(saved) == set(by_hand)
    assert max(float((saved[k] - by_hand[k]).abs().max()) for k in saved) <= 1e-6
    assert max(float((ends[2][k].float() - by_hand[k]).abs().max()) for k in saved) > 1e-4  # not the last step
    assert "saved the average of the weights at 3 epoch ends" in "\n".join(lines)


def test_a_resumed_run_continues_the_average(tiny_bert_folder, tmp_path):
    train(config(tiny_bert_folder, tmp_path / "straight"), echo=lambda *a, **k: None)

    def kill_at_step_14(step):
        if step == 14:
            raise KeyboardInterrupt  # dies mid-epoch 3, after the checkpoint of step 12

    with pytest.raises(KeyboardInterrupt):
        train(config(tiny_bert_folder, tmp_path / "resumed"), echo=lambda *a, **k: None, step_hook=kill_at_step_14)
    assert (tmp_path / "resumed.checkpoints" / "step-12" / "epoch_average.safetensors").is_file()
    assert not (tmp_path / "resumed").exists()
    train(config(tiny_bert_folder, tmp_path / "resumed", resume=True), echo=lambda *a, **k: None)
    a, b = saved_state(tmp_path / "straight"), saved_state(tmp_path / "resumed")
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-6
    assert torch.isfinite(torch.cat([v.flatten() for v in b.values()])).all()
