"""Process settings that make the CPU paths fast on a shared machine: OpenMP's wait policy and glibc's malloc.

**OpenMP threads sleep when they wait.** torch's CPU kernels (and MKL inside them) run in OpenMP parallel regions of
GNU libgomp, one thread per core. With OMP_WAIT_POLICY unset, a thread that reaches the end of a region, or waits
for the next, spins on its core before it sleeps. A training step of the packed path is thousands of short regions
(per length group, per layer, forward, backward). When another job keeps the cores busy, a spinning thread holds a
core while the thread the region waits for sits in the run queue behind that job: each barrier costs time slices,
not microseconds. `configure_openmp` sets OMP_WAIT_POLICY=PASSIVE (threads sleep at once and are woken) unless the
user set it; libgomp reads it when it loads, with torch, so `import embedder` does it only when torch is not yet
imported (train.py, evaluate.py and `python -m embedder` import embedder first). On a quiet machine it costs
nothing measurable; figures in benchmarks/README.md ("An Intel Xeon with AMX; under load").

**Freed memory is reused, not returned and faulted in again.** glibc's malloc serves blocks above its mmap
threshold (at most 32 MiB) with fresh mmap'd pages and unmaps them on free. A step allocates such blocks every
layer — the (T, 4D) feed-forward activations, the (B, H, L, L) attention scores — so each step the kernel zeroes
and faults in hundreds of MB again (90,000 page faults per all-MiniLM-L6-v2 step on the embedded data, a tenth of
its time in the kernel). `keep_freed_memory` sets M_MMAP_MAX = 0 (large blocks come from the heap too) and a
trim threshold of 2 GiB (freed memory at the top of the heap is kept for the next step): mallopt(3), glibc only,
a no-op elsewhere. Training calls it on the CPU; the peak resident set stays what the steps need
(benchmarks/README.md, "Memory").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # mallopt(3) parameters (malloc.h)
TRIM_THRESHOLD_BYTES = 2**31 - 1  # mallopt takes an int: 2 GiB


def configure_openmp() -> bool:
    """OMP_WAIT_POLICY=PASSIVE unless set or too late (torch, hence libgomp, already loaded); True when set."""
    if "torch" in sys.modules or "OMP_WAIT_POLICY" in os.environ:
        return False
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return True


def keep_freed_memory() -> bool:
    """glibc malloc keeps freed memory, large blocks included, for reuse (see the docstring); True when applied.
    Setting the same values again changes nothing."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))


__all__ = ["configure_openmp", "keep_freed_memory"]
