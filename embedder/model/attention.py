"""Attention pieces of the training step: attention with dropout, attention recomputed in backward or not, and
the packed path's row gather.

    Attention(q, k, v) = Dropout_p(softmax((q / √d_head) kᵀ + mask)) v            per head

Dropout on the probabilities forces SDPA's math kernel, which keeps the (B, H, L, L) probabilities (before and
after dropout) and the dropout mask of every layer for backward: (2 · itemsize + 1) bytes per entry, most of a
training step's memory at 384 tokens. `recomputed` (a small autograd Function) keeps only q, k, v (and the mask) and
the RNG state instead, and computes attention again in backward under the same autocast and RNG state: the same
numbers and gradients, at the cost of the attention forward twice (about a sixth of a bf16 MiniLM step on short
texts). `keep_probabilities` says which to do: keep them while all layers' together fit in
KEPT_PROBABILITIES_BYTES. The dropout mask is dropout.drop_mask's (four entries to a 64-bit word).
"""

from __future__ import annotations

import math

import torch

from .dropout import drop_mask

KEPT_PROBABILITIES_BYTES = 256 * 2**20  # attention probabilities kept for backward, all layers together, at most


def keep_probabilities(views: list[tuple[int, int]], heads: int, layers: int, dtype: torch.dtype) -> bool:
    """Whether backward may keep the attention probabilities of a forward over padded views (B, L) of `heads`
    heads and `layers` layers: layers · Σ B·heads·L² · (2 · itemsize + 1) ≤ KEPT_PROBABILITIES_BYTES."""
    entries = sum(count * heads * length * length for count, length in views)
    return layers * entries * (2 * dtype.itemsize + 1) <= KEPT_PROBABILITIES_BYTES


def attention_with_dropout(q, k, v, mask, p: float) -> torch.Tensor:
    """softmax((q / √d_head) kᵀ + mask) with dropout p on the probabilities, times v, rescaled by 1 / keep rate;
    q, k, v (B, H, L, d_head); mask: boolean (True = attend) or additive, broadcast to (B, H, L, L). SDPA's math
    kernel with fewer passes over the (B, H, L, L) tensors: a full additive mask of q's dtype outside autocast
    (MPNet's bias at fp32) is the C of the scores' GEMM (baddbmm: C + A·B in one pass); any other mask is added to
    the scores, in place where the dtypes agree (under bf16 autocast MPNet's fp32 mask still promotes the scores to
    fp32, as before); the scalings are on the (B, H, L, d_head) tensors; dropped probabilities are selected to zero
    by torch.where (one pass forward and backward, where masked_fill copies first); the dropout mask is
    drop_mask's. The same numbers as the plain formula (tests/model/test_encoder.py)."""
    B, H, L, d = q.shape
    q = q * (1 / math.sqrt(d))
    if mask.shape == (B, H, L, L) and mask.dtype == q.dtype and not torch.is_autocast_enabled(q.device.type):
        scores = torch.baddbmm(mask.reshape(B * H, L, L), q.reshape(B * H, L, d),
                               k.reshape(B * H, L, d).transpose(1, 2)).view(B, H, L, L)
    else:
        scores = q @ k.transpose(-2, -1)
        if mask.dtype == torch.bool:  # added as 0 / −inf: the add's backward is free, a masked_fill's is a pass
            mask = torch.zeros(mask.shape, dtype=scores.dtype, device=mask.device).masked_fill_(~mask, float("-inf"))
        scores = scores.add_(mask) if mask.dtype == scores.dtype else scores + mask
    probabilities = torch.softmax(scores, dim=-1)
    drop, rate = drop_mask(probabilities.shape, p, probabilities.device)
    return (torch.where(drop, 0, probabilities).to(v.dtype) @ v) * (1 / rate)


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
    """attend(q, k, v, mask, p) with only its inputs, the autocast state and the RNG state kept for backward, where
    it runs again under both (torch.utils.checkpoint does the same, but its first call imports torch._dynamo: 0.85 s
    of a short run's start-up on 2 cores)."""

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


__all__ = ["KEPT_PROBABILITIES_BYTES", "GatherRows", "attention_with_dropout", "keep_probabilities",
           "recomputed"]
