"""Normalize: scale each sentence embedding to unit L2 length, e / max(‖e‖₂, 1e-12) (torch's F.normalize).

It has no parameters and no config: its ST folder, 2_Normalize/, is empty.
"""

import torch
import torch.nn.functional as F
from torch import nn


class Normalize(nn.Module):
    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return F.normalize(embeddings, p=2, dim=-1)
