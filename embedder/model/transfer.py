"""Host-to-device copies of batches: every tensor in a nested value (dicts, lists, tuples, dataclasses such as
packing.Plan) moved at once. To a CUDA device the copy is from pinned (page-locked) memory and asynchronous
(`non_blocking`): the host goes on preparing the next batch while the copy and the step run, and nothing waits
for the device. Elsewhere it is a plain `.to(device)`, a no-op for tensors already there.
"""

from __future__ import annotations

import dataclasses

import torch


def map_tensors(value, function):
    """`value` with function(tensor) in place of every tensor inside it; other leaves (ints, strings) as they are."""
    if torch.is_tensor(value):
        return function(value)
    if isinstance(value, dict):
        return {key: map_tensors(item, function) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(map_tensors(item, function) for item in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{f.name: map_tensors(getattr(value, f.name), function)
                                             for f in dataclasses.fields(value) if f.init})
    return value


def copy_to(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    if device.type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def to_device(value, device: torch.device):
    """`value` with every tensor on `device` (see the module docstring)."""
    device = torch.device(device)
    return map_tensors(value, lambda tensor: copy_to(tensor, device))


__all__ = ["copy_to", "map_tensors", "to_device"]
