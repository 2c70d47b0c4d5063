"""Attention pieces of the training step: dropout masks, attention with dropout, attention recomputed in
backward, and the packed path's row gather.

    Attention(q, k, v) = Dropout_p(softmax((q / √d_head) kᵀ + mask)) v            per head

Dropout on the probabilities forces SDPA's math kernel, which keeps the (B, H, L, L) scores, probabilities and
dropout mask of every layer for backward (most of a training step's memory at 384 tokens). `recomputed` keeps only
q, k, v (and the mask) and the RNG state instead, and computes attention again in backward under the same autocast
and RNG state: the same numbers and gradients, ~L/(6·D) more FLOPs per step. On the CPU the dropout mask is drawn four
entries to a 64-bit word (drop_mask; torch's bernoulli_ was 28 % of a bf16 mpnet step), with or without gradients,
so GradCache's two passes draw the same masks.
"""

from __future__ import annotations

import math

import torch


def drop_mask(shape, p: float, device=None) -> tuple[torch.Tensor, float]:
    """(boolean mask, keep rate): each entry dropped (True) with probability p' = round(p · 2¹⁶) / 2¹⁶ (|p' − p| ≤
    2⁻¹⁷), independently. Drawn from torch's generator as uniform 16-bit lanes of full-range 64-bit words: one
    draw per four entries (torch's bernoulli_ draws one per entry)."""
    n = math.prod(shape)
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_(-2**63, 2**63 - 1)
    threshold = round(p * 65536)
    lanes = words.view(torch.int16)[:n].view(shape)
    return lanes < threshold - 32768, 1 - threshold / 65536


def attention_with_dropout(q, k, v, mask, p: float) -> torch.Tensor:
    """softmax((q / √d_head) kᵀ + mask) with dropout p on the probabilities, times v, rescaled by 1 / keep rate;
    mask: boolean (True = attend) or additive. SDPA's math kernel with the dropout mask from drop_mask, the
    scalings on the (B, H, L, d_head) tensors rather than the (B, H, L, L) ones and the dropped probabilities
    zeroed in place of a multiply by a cast mask (two passes over (B, H, L, L) fewer)."""
    scores = (q * (1 / math.sqrt(q.shape[-1]))) @ k.transpose(-2, -1)
    scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    probabilities = torch.softmax(scores, dim=-1)
    drop, rate = drop_mask(probabilities.shape, p, probabilities.device)
    return (probabilities.masked_fill(drop, 0).to(v.dtype) @ v) * (1 / rate)


class GatherRows(torch.autograd.Function):
    """x[index] for distinct row indices. Backward writes the gradient's rows back with index_copy into zeros:
    torch's own index_select backward is a scatter-add over every element, 5-10 % of a bf16 MiniLM step."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(index)
        ctx.rows = x.shape[0]
        return x.index_select(0, index)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (index,) = ctx.saved_tensors
        return grad.new_zeros(ctx.rows, *grad.shape[1:]).index_copy_(0, index, grad), None


def recomputed(attend, q, k, v, mask, p: float) -> torch.Tensor:
    """attend(q, k, v, mask, p), its (B, H, L, L) intermediates recomputed in backward rather than kept
    (torch.utils.checkpoint: the same RNG state and autocast in the recomputation)."""
    from torch.utils.checkpoint import checkpoint
    return checkpoint(attend, q, k, v, mask, p, use_reentrant=False)


__all__ = ["GatherRows", "attention_with_dropout", "drop_mask", "recomputed"]
