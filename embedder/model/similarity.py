"""Similarity functions between embeddings, under sentence-transformers' names (`similarity_fn_name`).

For rows a_i of A (n, d) and b_j of B (m, d), each returns the (n, m) float32 matrix S with
- cosine:    S_ij = a_i·b_j / (max(‖a_i‖, ε) · max(‖b_j‖, ε)),  ε = 1e-8 (the embeddings are normalised first)
- dot:       S_ij = a_i·b_j
- euclidean: S_ij = −‖a_i − b_j‖₂   (negated so that larger means more similar)
- manhattan: S_ij = −‖a_i − b_j‖₁
A single vector (d,) counts as one row. numpy arrays and tensors are both accepted; the result is a tensor.
"""

from __future__ import annotations

import numpy as np
import torch

SIMILARITY_FUNCTIONS = ("cosine", "dot", "euclidean", "manhattan")


def cos_sim(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """(n, m) cosine similarities of the rows of a (n, d) and b (m, d): a_i·b_j / (max(‖a_i‖, ε) · max(‖b_j‖, ε)),
    as sentence_transformers.util.cos_sim. The one cosine of the package: the loss, the evaluator, the collapse
    check and `similarity` all use it."""
    return torch.nn.functional.normalize(a, p=2, dim=-1, eps=eps) @ \
        torch.nn.functional.normalize(b, p=2, dim=-1, eps=eps).T


def _rows(x) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x)
    x = x.float()
    return x.unsqueeze(0) if x.dim() == 1 else x


def similarity(a, b, function: str = "cosine") -> torch.Tensor:
    """The (n, m) similarity matrix of `a` and `b` by `function` (module docstring)."""
    a, b = _rows(a), _rows(b).to(_rows(a).device)
    if function == "cosine":
        return cos_sim(a, b, eps=1e-8)
    if function == "dot":
        return a @ b.T
    if function == "euclidean":
        return -torch.cdist(a, b, p=2.0)
    if function == "manhattan":
        return -torch.cdist(a, b, p=1.0)
    raise ValueError(f"unknown similarity function {function!r}; use one of {', '.join(SIMILARITY_FUNCTIONS)}")


__all__ = ["SIMILARITY_FUNCTIONS", "cos_sim", "similarity"]
