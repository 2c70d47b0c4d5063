"""Uniform weight averages, the one mechanism behind model soups (train/soup.py: K runs) and --average-epochs
(train/tracking.py: the epoch ends of one run):

    θ̄ = (1/K) Σ_k θ_k        tensor by tensor, summed in float32 on the CPU, stored in the first state's dtype

Weights of one base model fine-tuned along nearby paths stay in one basin of the loss, so their average is a model
of its own (Wortsman et al. 2022, "Model soups"; Izmailov et al. 2018, "Averaging weights leads to wider optima").
"""

from __future__ import annotations

import torch

from ..errors import UserError


class RunningAverage:
    """θ_soup accumulated one state at a time (Σ θ_k in float32, on the CPU), so K members never sit in memory
    together; each state must have the first one's tensors and shapes (UserError naming it otherwise)."""

    def __init__(self):
        self.total: dict[str, torch.Tensor] = {}
        self.dtypes: dict[str, torch.dtype] = {}
        self.count, self.first_name = 0, ""

    def add(self, state: dict[str, torch.Tensor], name: str) -> None:
        if not self.count:
            self.total = {k: v.detach().float().cpu().clone() for k, v in state.items()}
            self.dtypes, self.first_name = {k: v.dtype for k, v in state.items()}, name
        else:
            if set(state) != set(self.total) or any(state[k].shape != self.total[k].shape for k in self.total):
                different = sorted(set(state) ^ set(self.total)) or \
                    [k for k in self.total if state[k].shape != self.total[k].shape]
                raise UserError(f"{self.first_name} and {name} are not one architecture (they differ at "
                                f"{different[0]!r}); average runs of the same base model")
            for key, tensor in state.items():
                self.total[key] += tensor.detach().float().cpu()
        self.count += 1

    def resume(self, total: dict[str, torch.Tensor], count: int, like: dict[str, torch.Tensor], name: str) -> None:
        """Continue a sum saved in a checkpoint (`total` of `count` states), stored in the dtypes of `like`."""
        self.total, self.count, self.first_name = {k: v.float() for k, v in total.items()}, count, name
        self.dtypes = {k: v.dtype for k, v in like.items()}

    def average(self) -> dict[str, torch.Tensor]:
        if not self.count:
            raise ValueError("no state to average")
        return {k: (v / self.count).to(self.dtypes[k]) for k, v in self.total.items()}


def uniform_average(states: list[dict[str, torch.Tensor]], names: list[str] | None = None) -> dict[str, torch.Tensor]:
    """The uniform average of `states` (RunningAverage); UserError naming the first state that differs from the
    first one in its tensors or shapes (not one architecture)."""
    soup = RunningAverage()
    for k, state in enumerate(states):
        soup.add(state, names[k] if names else f"member {k}")
    return soup.average()


__all__ = ["RunningAverage", "uniform_average"]
