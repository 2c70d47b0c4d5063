"""Dropout for the CPU training step, drawn four entries to a 64-bit word.

    Dropout_p(x)_i = x_i · (1 − m_i) / (1 − p'),   m_i ~ Bernoulli(p') independently,   p' = round(p · 2¹⁶) / 2¹⁶

so |p' − p| ≤ 2⁻¹⁷ (p = 0.1: p' = 0.100006) and E[Dropout_p(x)] = x. The mask m comes from torch's generator as
uniform 16-bit lanes of full-range 64-bit words: one draw per four entries, where torch's bernoulli_ draws one per
entry (bernoulli_ was 28 % of a bf16 mpnet step on attention probabilities, 9 % of a bf16 MiniLM step on hidden
states). The same RNG state gives the same mask, with or without gradients, so recomputation (attention.py) and
GradCache's two passes draw the same masks. On a GPU, torch's fused dropout is used as it is.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def drop_mask(shape, p: float, device=None) -> tuple[torch.Tensor, float]:
    """(boolean mask m, keep rate 1 − p'): each entry dropped (True) with probability p', independently."""
    n = math.prod(shape)
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_(-2**63, 2**63 - 1)
    threshold = round(p * 65536)
    lanes = words.view(torch.int16)[:n].view(shape)
    return lanes < threshold - 32768, 1 - threshold / 65536


def dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Dropout_p(x) as above (training mode): the dropped entries zeroed, the rest scaled by 1 / keep rate."""
    drop, rate = drop_mask(x.shape, p, x.device)
    return x.masked_fill(drop, 0) * (1 / rate)


class Dropout(nn.Module):
    """nn.Dropout with the CPU mask above; torch's own dropout on other devices."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not self.p:
            return x
        return dropout(x, self.p) if x.device.type == "cpu" else F.dropout(x, self.p, training=True)

    def extra_repr(self) -> str:
        return f"p={self.p}"


__all__ = ["Dropout", "drop_mask", "dropout"]
