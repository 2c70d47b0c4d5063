"""Numeric precision: the one place that says what each `--precision` means on each device.

Weights, optimiser state and the loss stay float32 in every mode; bf16/fp16 only change the dtype the matmuls run
in, through `torch.autocast` (fp16 adds a GradScaler, see trainer.py):

    fp32   no autocast: the exact sentence-transformers parity path
    bf16   autocast(bfloat16) on CUDA or the CPU
    fp16   autocast(float16) with loss scaling; CUDA only
    auto   on CUDA: bf16 where supported, else fp16. On the CPU: bf16 where the processor computes it natively
           (AMX-BF16 or AVX512-BF16 on x86, BF16 on Arm, as torch's cpuinfo reports it: the instructions oneDNN's
           bf16 matmuls run on), else fp32 — elsewhere bf16 is emulated and slower than fp32.

`choose_precision` turns a request into what runs and says why, in words the start-up report prints; asking for bf16 on a
CPU that only emulates it runs it, with a warning.
"""

from __future__ import annotations

import contextlib

import torch

from ..errors import UserError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}


CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16", "bf16", "sve_bf16")  # torch.cpu.get_capabilities() keys


def cpu_bf16_feature() -> str | None:
    """The CPU feature through which bf16 matmuls run natively, or None when the CPU only emulates bf16."""
    try:
        capabilities = torch.cpu.get_capabilities()
    except (AttributeError, RuntimeError):  # torch < 2.6: the older probes
        probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
        return "avx512_bf16" if probe is not None and probe() else None
    return next((flag for flag in CPU_BF16_FLAGS if capabilities.get(flag)), None)


def choose_precision(precision: str, device: torch.device) -> tuple[str, str, str]:
    """(the precision that runs: fp32, bf16 or fp16; the reason, one phrase; a warning or "") for a --precision on
    a device."""
    if precision not in PRECISIONS:
        raise UserError(f"--precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    if device.type == "cuda":
        if precision == "auto":
            if torch.cuda.is_bf16_supported():
                return "bf16", "auto: the GPU computes bf16", ""
            return "fp16", "auto: the GPU has no bf16, fp16 with loss scaling", ""
        return precision, "as asked", ""
    if precision == "fp16":
        raise UserError(f"--precision fp16 needs a CUDA GPU (no GradScaler on {device.type}); use fp32 or bf16")
    if device.type != "cpu":
        return ("fp32", f"auto: fp32 on {device.type}", "") if precision == "auto" else (precision, "as asked", "")
    feature = cpu_bf16_feature()
    if precision == "auto":
        return ("bf16", f"auto: this CPU computes bf16 natively ({feature})", "") if feature else \
            ("fp32", "auto: this CPU has no native bf16 (no AVX512-BF16/AMX), so fp32", "")
    if precision == "bf16" and not feature:
        return "bf16", "as asked", ("--precision bf16: this CPU has no native bf16 (no AVX512-BF16/AMX), so it is "
                                    "emulated and likely slower than fp32; --precision auto picks fp32 here")
    return precision, "as asked", ""


def autocast(device: torch.device, precision: str | None):
    """The autocast context of a precision: bf16/fp16 autocast, or a null context for fp32."""
    if precision in ("fp32", "float32", None):
        return contextlib.nullcontext()
    dtype = _DTYPES.get(precision)
    if dtype is None:
        raise ValueError(f"unknown precision {precision!r}; use fp32, bf16 or fp16")
    return torch.autocast(device_type=device.type, dtype=dtype)


__all__ = ["PRECISIONS", "autocast", "choose_precision", "cpu_bf16_feature"]
