"""--precision: what each choice means on each device, with the CPU's bf16 capability mocked both ways, and bf16
autocast training on the CPU end to end (the loss falls; the export loads in sentence-transformers)."""

import json

import pytest
import torch

from embedder.errors import UserError
from embedder.model import precision

CPU = torch.device("cpu")


@pytest.mark.parametrize("capabilities, feature", [
    ({"avx512_bf16": True, "amx_bf16": False}, "avx512_bf16"),
    ({"avx512_bf16": True, "amx_bf16": True}, "amx_bf16"),
    ({"avx512_bf16": False, "avx2": True}, None),
    ({"bf16": True}, "bf16"),  # Arm (Neoverse V1/N2, Graviton 3+)
], ids=["avx512-bf16", "amx", "none", "arm"])
def test_native_bf16_is_read_from_torchs_cpu_capabilities(monkeypatch, capabilities, feature):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities)
    assert precision.cpu_bf16_feature() == feature


def test_auto_on_a_cpu_with_native_bf16(monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_feature", lambda: "avx512_bf16")
    assert precision.choose_precision("auto", CPU) == ("bf16", "auto: this CPU computes bf16 natively (avx512_bf16)", "")
    assert precision.choose_precision("fp32", CPU)[0] == "fp32"  # the exact parity path stays available
    assert precision.choose_precision("bf16", CPU) == ("bf16", "as asked", "")


def test_auto_on_a_cpu_without_native_bf16(monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_feature", lambda: None)
    chosen, reason, warning = precision.choose_precision("auto", CPU)
    assert chosen == "fp32" and "no native bf16" in reason and warning == ""
    chosen, _, warning = precision.choose_precision("bf16", CPU)
    assert chosen == "bf16" and "emulated" in warning and "\n" not in warning
    with pytest.raises(UserError, match="fp16 needs a CUDA GPU"):
        precision.choose_precision("fp16", CPU)


def test_emulated_bf16_warns_the_user(tiny_bert_folder, tmp_path, monkeypatch):
    """The warning reaches the user: a run with the capability mocked away prints it as a warning (stderr)."""
    monkeypatch.setattr(precision, "cpu_bf16_feature", lambda: None)
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"anchor": f"q{i}", "positive": f"p{i}"}) + "\n" for i in range(8)))
    messages = []
    import embedder
    embedder.fit(base=str(tiny_bert_folder), train=str(pairs), output=str(tmp_path / "m"), batch_size=8,
                 max_steps=1, precision="bf16", matryoshka_dims=None,
                 echo=lambda *a, err=False, **k: messages.append((err, " ".join(map(str, a)))))
    assert (True, "WARNING: " + precision.choose_precision("bf16", CPU)[2]) in messages


def test_bf16_training_lowers_the_loss_and_exports_a_model_st_loads(tiny_bert_folder, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"anchor": f"what is item {i} about?", "positive": f"item {i} is about "
                                         f"topic {i % 7} and colour {i % 3}"}) + "\n" for i in range(64)))
    import embedder
    result = embedder.fit(base=str(tiny_bert_folder), train=str(pairs), output=str(tmp_path / "m"), epochs=6,
                          batch_size=16, lr=1e-3, precision="bf16", matryoshka_dims=None, logging_steps=1,
                          echo=lambda *a, **k: None)
    assert result.config.precision == "bf16"
    losses = [row["loss"] for row in map(json.loads, (tmp_path / "m" / "training_log.jsonl").read_text().splitlines())
              if "loss" in row]
    assert len(losses) == 24 and sum(losses[-4:]) < 0.75 * sum(losses[:4]), losses
    from sentence_transformers import SentenceTransformer

    texts = ["what is item 3 about?", "item 5 is about topic 5"]
    ours = embedder.load(str(tmp_path / "m")).encode(texts)
    theirs = SentenceTransformer(str(tmp_path / "m"), device="cpu").encode(texts)
    assert abs(ours - theirs).max() <= 1e-5
