"""The attention dropout mask and the keep-or-recompute choice for attention probabilities, against hand-computed
values: the mask's entries independent of one another; the byte budget of attention.keep_probabilities by hand; an
encoder's training forward and gradients the same, bit for bit, whether attention probabilities are kept or
recomputed. (The mask's share per lane and the attention formula with it: tests/model/test_encoder.py.)"""

import pytest
import torch
from transformers import BertConfig

from embedder.model import attention
from embedder.model.dropout import drop_mask
from embedder.model.encoder import Encoder, EncoderConfig


def test_mask_entries_are_independent():
    """P(m_i ∧ m_j) = p'² for entries 1 to 1536 apart (within a word, across words, across rows of 384 and 1536),
    over 40 million entries: a standard error of 0.16 % of p'²; the bound is 1 %."""
    torch.manual_seed(0)
    drop, rate = drop_mask((40_000_000,), 0.1)
    p = 1 - rate
    for gap in (1, 2, 3, 4, 5, 8, 16, 384, 1536):
        joint = (drop[:-gap] & drop[gap:]).sum().item() / (drop.numel() - gap)
        assert abs(joint / (p * p) - 1) < 0.01, (gap, joint / (p * p))


@pytest.mark.parametrize("views, heads, layers, dtype, kept", [
    # 6 · 16·12·128² · (2·2 + 1) = 94,371,840 bytes <= 256 MiB
    ([(16, 128)], 12, 6, torch.bfloat16, True),
    # 6 · 16·12·128² · (2·4 + 1) = 169,869,312 + 6 · 16·12·32² · 9 = 10,616,832: 180,486,144 <= 268,435,456
    ([(16, 128), (16, 32)], 12, 6, torch.float32, True),
    # 12 · 20·12·384² · 5 = 2,123,366,400 > 256 MiB (the main job's longest passages, padded)
    ([(20, 384)], 12, 12, torch.bfloat16, False),
])
def test_keep_probabilities_budget(views, heads, layers, dtype, kept):
    assert attention.keep_probabilities(views, heads, layers, dtype) is kept


def _tiny_encoder():
    config = EncoderConfig.from_hf(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                                              num_attention_heads=4, intermediate_size=64,
                                              attention_probs_dropout_prob=0.3).to_dict())
    torch.manual_seed(0)
    return Encoder(config).train()


@pytest.mark.parametrize("dtype", [None, torch.bfloat16])
def test_kept_and_recomputed_attention_agree(monkeypatch, dtype):
    encoder = _tiny_encoder()
    ids = torch.randint(5, 100, (4, 12))
    mask = torch.ones(4, 12, dtype=torch.long)
    mask[1, 7:] = 0
    mask[3, 3:] = 0
    results = []
    for budget in (attention.KEPT_PROBABILITIES_BYTES, 0):  # kept (tiny batch), then recomputed
        monkeypatch.setattr(attention, "KEPT_PROBABILITIES_BYTES", budget)
        encoder.zero_grad()
        torch.manual_seed(7)
        shapes = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: shapes.append(tuple(t.shape)) or t, lambda t: t):
            with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                out = encoder(ids, mask)
        out.float().square().sum().backward()
        results.append((out, [p.grad.clone() for p in encoder.parameters() if p.grad is not None],
                        any(len(s) == 4 and s[-1] == s[-2] for s in shapes), torch.rand(1)))
    (kept_out, kept_grads, kept_4d, kept_next), (re_out, re_grads, re_4d, re_next) = results
    assert kept_4d and not re_4d  # (B, H, L, L) tensors saved for backward only when kept (d_head 8, L ≠ 8)
    assert torch.equal(kept_out, re_out) and torch.equal(kept_next, re_next)
    assert all(torch.equal(a, b) for a, b in zip(kept_grads, re_grads))
