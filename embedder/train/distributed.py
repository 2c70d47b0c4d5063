"""Data-parallel training under torchrun, through torch.distributed (gloo on CPU, NCCL on GPU) and DDP.

The trainer touches this module at three points:
- `setup()` reads torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK) and joins the process group;
- `local_rows(rows, rank, world)` gives each process its slice of a global batch (the global batch is drawn
  exactly as a single process would draw it, so N processes × B rows train like one process with N·B rows);
- `gather_with_grad(x)` all-gathers embeddings so every anchor sees the positives of every device as negatives
  (ST's gather_across_devices, OpenCLIP's gather-with-grad). The backward of the gather sums each rank's gradient
  into the embeddings that rank owns, and DDP then averages parameter gradients, so the update equals that of
  one process holding the whole global batch: with local loss L_r = (n_r / n) · W · mean over its own anchors,
  (1/W) Σ_r ∂L_r/∂θ = ∂(mean over all n anchors)/∂θ.
Only rank 0 logs, evaluates and writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from ..errors import UserError


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: str | None = None) -> tuple[Context, str | None]:
    """Join torchrun's process group when launched by torchrun; returns the context and the device to use."""
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return Context(), device
    rank, local_rank = _env_int("RANK", None), _env_int("LOCAL_RANK", 0)
    if rank is None or not 0 <= rank < world or local_rank < 0:
        raise UserError(f"torchrun environment incomplete: WORLD_SIZE={world} but RANK={os.environ.get('RANK')!r}; "
                        "launch with torchrun, or unset WORLD_SIZE to train in one process")
    use_cuda = torch.cuda.is_available() and (device is None or str(device).startswith("cuda"))
    if not dist.is_initialized():
        try:
            dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        except (ValueError, RuntimeError) as err:
            raise UserError(f"torchrun environment incomplete ({str(err).splitlines()[0][:120]}); launch with "
                            "torchrun, or unset WORLD_SIZE and RANK to train in one process") from None
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    else:
        device = "cpu"
    return Context(rank, world), device


def _env_int(name: str, default: int | None) -> int | None:
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise UserError(f"environment variable {name}={text!r} is not a whole number; fix or unset it") from None


def teardown(context: Context) -> None:
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()


def local_rows(rows: list[int], rank: int, world: int) -> list[int]:
    """This rank's contiguous slice of a global batch (sizes differ by at most one)."""
    return np.array_split(np.asarray(rows, dtype=np.int64), world)[rank].tolist()


def slice_sizes(n: int, world: int) -> list[int]:
    return [len(part) for part in np.array_split(np.arange(n), world)]


def gather_with_grad(tensor: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Concatenate every rank's rows (rank order); gradients flow back to the rank that owns each row."""
    from torch.distributed.nn.functional import all_gather

    longest = max(sizes)
    if tensor.shape[0] < longest:  # all_gather needs equal shapes: pad, then drop the padding
        tensor = torch.cat([tensor, tensor.new_zeros(longest - tensor.shape[0], *tensor.shape[1:])])
    parts = all_gather(tensor)
    return torch.cat([part[:size] for part, size in zip(parts, sizes)])


def barrier(context: Context) -> None:
    if context.enabled:
        dist.barrier()


def broadcast_flag(flag: bool, context: Context, device: torch.device | None = None) -> bool:
    """Rank 0's decision, for every rank (e.g. stop after an interrupt). device: the process's device (NCCL
    broadcasts only CUDA tensors); the result is read back, a synchronisation."""
    if not context.enabled:
        return flag
    value = torch.tensor([1 if flag else 0], device=device)
    dist.broadcast(value, src=0)
    return bool(value.item())
