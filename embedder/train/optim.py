"""Optimiser and learning-rate schedule, with the defaults of the seeds' model cards (ST/transformers Trainer).

AdamW (torch's fused kernel, on CUDA and on the CPU): lr 5e-5, betas (0.9, 0.999), eps 1e-8, weight decay 0.
When weight decay > 0 it never applies to biases, LayerNorm weights and MPNet's relative bias (transformers' rule);
every parameter lands in exactly one group. It is torch's AdamW, its methods called without the wrappers that
import torch._dynamo on first use (a guard for torch.compile, which embedder does not use; the import is 0.9 s of
a 15 s fine-tune on 2 cores): `step` runs under torch.no_grad() as torch's wrapper sets it; the update is torch's.
A step whose loss or gradients are not finite is skipped by the kernel itself (`step_unless`).

Linear schedule with warmup W over T optimiser steps, the multiplier used *at* step s (0-based), as transformers'
get_linear_schedule_with_warmup gives it:

    s < W:  s / max(1, W)            s ≥ W:  max(0, (T − s) / max(1, T − W))

W = ceil(warmup_ratio · T) unless warmup steps are given.
"""

from __future__ import annotations

import inspect
import math
import re

import torch
from torch import nn

# transformers' Trainer rule: no decay inside LayerNorm modules or for names matching these patterns (our names
# keep the patterns of the Hugging Face names: relative_bias <-> relative_attention_bias, *_norm <-> LayerNorm)
_NO_DECAY_PATTERNS = [re.compile(p) for p in (r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)")]


def decays(model: nn.Module, name: str) -> bool:
    return not isinstance(_owner(model, name), nn.LayerNorm) and not any(p.search(name.lower()) for p in _NO_DECAY_PATTERNS)


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (decay if decays(model, name) else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    assert sum(len(g["params"]) for g in groups) == sum(1 for p in model.parameters() if p.requires_grad)
    return [g for g in groups if g["params"]]


def _owner(model: nn.Module, parameter_name: str) -> nn.Module:
    module_name = parameter_name.rpartition(".")[0]
    return model.get_submodule(module_name) if module_name else model


class AdamW(torch.optim.AdamW):
    """torch.optim.AdamW without torch._dynamo (see above)."""

    @torch.no_grad()
    def step(self, closure=None):
        return inspect.unwrap(torch.optim.AdamW.step)(self, closure)


for _name in ("add_param_group", "zero_grad", "state_dict", "load_state_dict"):  # torch._disable_dynamo-wrapped
    setattr(AdamW, _name, inspect.unwrap(getattr(torch.optim.Optimizer, _name)))


def make_optimizer(model: nn.Module, lr: float = 5e-5, weight_decay: float = 0.0, betas=(0.9, 0.999),
                   eps: float = 1e-8) -> torch.optim.AdamW:
    # fused: one kernel for all parameters; on the CPU too (torch >= 2.4): all-mpnet-base-v2's step 426 -> 50 ms on
    # 2 cores, all-MiniLM-L6-v2's 49 -> 11 ms, the same update as the default for-each kernels
    fused = next(model.parameters()).device.type in ("cuda", "cpu")
    return AdamW(parameter_groups(model, weight_decay), lr=lr, betas=betas, eps=eps, fused=True if fused else None)


def step_unless(optimizer: torch.optim.Optimizer, skip: torch.Tensor) -> None:
    """optimizer.step(), except where `skip` (a boolean scalar on the parameters' device) is true — decided on the
    device: torch's fused AdamW takes the flag as GradScaler hands it over (`found_inf`) and then leaves weights,
    moments and step counts as they were; nothing is read back. Another optimiser reads the flag on the host."""
    if not optimizer.defaults.get("fused"):
        if not bool(skip):
            optimizer.step()
        return
    optimizer.grad_scale, optimizer.found_inf = None, skip.to(torch.float32)
    try:
        optimizer.step()
    finally:
        del optimizer.grad_scale, optimizer.found_inf


def warmup_steps(total_steps: int, warmup_ratio: float = 0.0, steps: int | None = None) -> int:
    return steps if steps is not None else math.ceil(total_steps * warmup_ratio)


def lr_multiplier(step: int, total_steps: int, warmup: int) -> float:
    if step < warmup:
        return step / max(1, warmup)
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup))
