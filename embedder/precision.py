"""Numeric precision: the one place that says what each `--precision` means on each device.

Weights, optimiser state and the loss stay float32 in every mode; bf16/fp16 only change the dtype the matmuls run
in, through `torch.autocast` (fp16 adds a GradScaler, see trainer.py):

    fp32   no autocast: the exact sentence-transformers parity path
    bf16   autocast(bfloat16) on CUDA or the CPU
    fp16   autocast(float16) with loss scaling; CUDA only
    auto   bf16 on CUDA where supported, else fp16; fp32 on the CPU

`resolve` turns a request into what runs and says why, in words the start-up report prints.
"""

from __future__ import annotations

import contextlib

import torch

from .errors import UserError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}


def resolve(precision: str, device: torch.device) -> tuple[str, str]:
    """(the precision that runs: fp32, bf16 or fp16; the reason, one phrase) for a --precision on a device."""
    if precision not in PRECISIONS:
        raise UserError(f"--precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    if device.type != "cuda":
        if precision == "fp16":
            raise UserError("--precision fp16 needs a CUDA GPU (no GradScaler on the CPU); use fp32 or bf16")
        if precision == "auto":
            return "fp32", f"auto: fp32 on {device.type}"
        return precision, "as asked"
    if precision == "auto":
        if torch.cuda.is_bf16_supported():
            return "bf16", "auto: the GPU computes bf16"
        return "fp16", "auto: the GPU has no bf16, fp16 with loss scaling"
    return precision, "as asked"


def autocast(device: torch.device, precision: str | None):
    """The autocast context of a precision: bf16/fp16 autocast, or a null context for fp32."""
    if precision in ("fp32", "float32", None):
        return contextlib.nullcontext()
    dtype = _DTYPES.get(precision)
    if dtype is None:
        raise ValueError(f"unknown precision {precision!r}; use fp32, bf16 or fp16")
    return torch.autocast(device_type=device.type, dtype=dtype)


__all__ = ["PRECISIONS", "autocast", "resolve"]
