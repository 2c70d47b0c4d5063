"""Model soups: the uniform average of the weights of K fine-tuned runs of one base model (Wortsman et al., 2022,
"Model soups: averaging weights of multiple fine-tuned models improves accuracy without increasing inference
time"):

    θ_soup = (1/K) Σ_k θ_k        tensor by tensor, in float32, stored in the first state's dtype

Runs of one base from different seeds (data order, dropout, the validation slice each holds out) stay in one
basin of the loss, so their average is a model of its own, not a blur; benchmarks/soup_lever.py measures it.
"""

from __future__ import annotations

import torch

from ..errors import UserError


def uniform_average(states: list[dict[str, torch.Tensor]], names: list[str] | None = None) -> dict[str, torch.Tensor]:
    """The uniform average of `states`; UserError naming the first state that differs from the first one in its
    tensors or shapes (not one architecture)."""
    if not states:
        raise ValueError("no state to average")
    names = names or [f"member {k}" for k in range(len(states))]
    first = states[0]
    for name, state in zip(names[1:], states[1:]):
        if set(state) != set(first) or any(state[k].shape != first[k].shape for k in first):
            different = sorted(set(state) ^ set(first)) or [k for k in first if state[k].shape != first[k].shape]
            raise UserError(f"{names[0]} and {name} are not one architecture (they differ at {different[0]!r}); "
                            "average runs of the same base model")
    out = {}
    for key, tensor in first.items():
        total = torch.zeros(tensor.shape, dtype=torch.float32)
        for state in states:
            total += state[key].float()
        out[key] = (total / len(states)).to(tensor.dtype)
    return out


__all__ = ["uniform_average"]
