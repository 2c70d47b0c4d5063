"""Training against sentence-transformers' own trainer: four steps of embedder.fit and of SentenceTransformerTrainer
(ST's defaults: AdamW lr 5e-5, linear decay, no warmup, clipping at 1.0; MatryoshkaLoss over MNRL, scale 20), fp32,
real all-MiniLM-L6-v2 and all-mpnet-base-v2 with dropout off, on the same batches (ST given them as its batch
sampler, embedder's batch plan replaced by them). The weight changes Δ = trained − base must agree element by
element.

Adam's update g / (√v + ε) does not depend on the gradient's size, so where a gradient is float noise the update
is noise of the learning rate's size: the attention key biases, whose true gradient is zero (q · b_k is the same
for every key of a row, and softmax ignores it), are only checked to stay at that size."""

import json
import shutil

import numpy as np
import pytest
from safetensors.torch import load_file

import embedder
from embedder.data import batching

LR, STEPS, BATCH = 5e-5, 4, 16
KEY_BIASES = (".attention.self.key.bias", ".attention.attn.k.bias")  # BERT's, MPNet's


@pytest.mark.parametrize("which, dims", [("minilm_folder", (384, 256, 128, 64)),
                                         ("mpnet_folder", (768, 512, 256, 128, 64))])
def test_four_steps_match_sentence_transformers_trainer(which, dims, request, ir_data_dir, tmp_path, monkeypatch):
    from datasets import Dataset
    from sentence_transformers import (SentenceTransformer, SentenceTransformerTrainer,
                                       SentenceTransformerTrainingArguments)
    from sentence_transformers.losses import MatryoshkaLoss, MultipleNegativesRankingLoss

    folder = tmp_path / "no-dropout"
    shutil.copytree(request.getfixturevalue(which), folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (folder / "config.json").write_text(json.dumps(config))
    data = json.loads((ir_data_dir / "train.json").read_text(encoding="utf-8"))
    pairs = [(data["questions"][q], data["corpus"][ids[0]]) for q, ids in data["relevant_contexts"].items()]
    rows = np.random.default_rng(0).permutation(len(pairs))[:STEPS * BATCH].tolist()
    batches = [rows[i:i + BATCH] for i in range(0, len(rows), BATCH)]

    st = SentenceTransformer(str(folder), device="cpu")
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path / "st"), per_device_train_batch_size=BATCH, num_train_epochs=1, learning_rate=LR,
        warmup_ratio=0.0, weight_decay=0.0, max_grad_norm=1.0, seed=42, save_strategy="no", report_to="none",
        disable_tqdm=True, use_cpu=True, batch_sampler=lambda dataset, **kwargs: batches)
    dataset = Dataset.from_dict({"anchor": [a for a, _ in pairs], "positive": [p for _, p in pairs]})
    loss = MatryoshkaLoss(st, MultipleNegativesRankingLoss(st, scale=20.0), list(dims))
    SentenceTransformerTrainer(model=st, args=args, train_dataset=dataset, loss=loss).train()
    theirs = {name: t.detach().float() for name, t in st[0].auto_model.state_dict().items()}

    monkeypatch.setattr(batching, "epoch_batches", lambda *a, **k: [(0, list(b)) for b in batches])
    embedder.fit(base=str(folder), train=pairs, eval=None, eval_general=(), merge="off", output=str(tmp_path / "ours"),
                 epochs=1, batch_size=BATCH, matryoshka_dims=dims, precision="fp32", echo=lambda *a, **k: None)
    ours = load_file(str(tmp_path / "ours" / "model.safetensors"))
    base = load_file(str(folder / "model.safetensors"))

    trained = [name for name, t in base.items()  # parameters only (not position_ids); ST never uses the pooler
               if t.is_floating_point() and not name.startswith("pooler.")]
    assert trained and all(name in ours and name in theirs for name in trained)
    moved, off, entries = 0.0, 0, 0
    for name in trained:
        delta_theirs, delta_ours = theirs[name] - base[name].float(), ours[name].float() - base[name].float()
        gap = (delta_theirs - delta_ours).abs()
        if name.endswith(KEY_BIASES):  # zero true gradient: noise of the lr's size at most
            assert delta_ours.abs().max() <= STEPS * LR and delta_theirs.abs().max() <= STEPS * LR, name
            continue
        moved = max(moved, delta_theirs.abs().max().item())
        # Δ is up to STEPS · LR = 2e-4; a wrong schedule, loss or batch moves most entries by ~LR / 4 or more
        assert gap.max() <= 1e-5, (name, gap.max().item())
        assert (gap > 1e-6).float().mean() <= 0.01, (name, (gap > 1e-6).float().mean().item())
        off, entries = off + int((gap > 1e-6).sum()), entries + gap.numel()
    assert off <= 1e-4 * entries, off / entries  # measured 43 of 22.6M (MiniLM), 499 of 109M (mpnet)
    assert moved >= 0.5 * STEPS * LR  # the weights did move (Adam: about lr per step)
