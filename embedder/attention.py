"""Attention pieces of the training step: dropout masks, attention with dropout, attention recomputed in
backward, and the packed path's row gather.

    Attention(q, k, v) = Dropout_p(softmax((q / √d_head) kᵀ + mask)) v            per head

Dropout on the probabilities forces SDPA's math kernel, which keeps the (B, H, L, L) scores, probabilities and
dropout mask of every layer for backward (most of a training step's memory at 384 tokens). `recomputed` keeps only
q, k, v (and the mask) and the RNG state instead, and computes attention again in backward under the same autocast
and RNG state: the same numbers and gradients, ~L/(6·D) more FLOPs per step. (torch.utils.checkpoint does the
same, but importing it pulls in torch._dynamo: 1.25 s at start-up.) On the CPU the dropout mask is drawn four
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


class _Recomputed(torch.autograd.Function):
    """attend(q, k, v, mask, p) with only its inputs and the RNG state kept for backward (see the docstring)."""

    @staticmethod
    def forward(ctx, attend, p, q, k, v, mask):
        device = q.device
        ctx.attend, ctx.p, ctx.device = attend, p, device
        ctx.autocast = (torch.is_autocast_enabled(device.type), torch.get_autocast_dtype(device.type))
        ctx.rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()
        ctx.save_for_backward(q, k, v, mask)
        return attend(q, k, v, mask, p)

    @staticmethod
    def backward(ctx, grad):
        q, k, v, mask = ctx.saved_tensors
        device = ctx.device
        inputs = [t.detach().requires_grad_(t.requires_grad) for t in (q, k, v, mask)]
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else [], device_type=device.type):
            if device.type == "cuda":
                torch.cuda.set_rng_state(ctx.rng, device)
            else:
                torch.set_rng_state(ctx.rng)
            enabled, dtype = ctx.autocast
            with torch.enable_grad(), torch.autocast(device.type, dtype=dtype, enabled=enabled):
                output = ctx.attend(*inputs, ctx.p)
        wanted = [t for t in inputs if t.requires_grad]
        grads = iter(torch.autograd.grad(output, wanted, grad) if wanted else ())
        return (None, None, *(next(grads) if t.requires_grad else None for t in inputs))


def recomputed(attend, q, k, v, mask, p: float) -> torch.Tensor:
    """attend(q, k, v, mask, p), its (B, H, L, L) intermediates recomputed in backward rather than kept."""
    return _Recomputed.apply(attend, p, q, k, v, mask)


__all__ = ["GatherRows", "attention_with_dropout", "drop_mask", "recomputed"]
