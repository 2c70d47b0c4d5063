"""embedder/runtime.py: OpenMP's wait policy set before torch loads (and never over the user's), and glibc's malloc
made to serve large blocks from the heap it keeps, read back from glibc itself (mallinfo2). Fresh processes: both
are process-wide settings."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import subprocess
import sys

import pytest
from conftest import REPO


def run(code: str, **env) -> str:
    environment = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    environment.update(env)
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=environment, capture_output=True, text=True,
                          check=True, timeout=300).stdout.strip()


def test_import_embedder_makes_openmp_threads_sleep_unless_told_otherwise():
    read = "import os; print(os.environ.get('OMP_WAIT_POLICY'))"
    assert run(f"import embedder; {read}") == "PASSIVE"
    assert run(f"import embedder; {read}", OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"  # the user's choice stays
    assert run(f"import torch, embedder; {read}") == "None"  # too late: libgomp has read the environment


MALLINFO = """
import ctypes, json, sys
sys.path.insert(0, {repo!r})
from embedder import runtime
class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]
applied = runtime.keep_freed_memory() if {keep} else False
before = libc.mallinfo2().hblkhd  # bytes in mmap'd blocks
block = libc.malloc(256 << 20)
mapped = libc.mallinfo2().hblkhd - before
libc.free(block)
print(json.dumps({{"applied": applied, "mapped": mapped, "kept_free": libc.mallinfo2().fordblks}}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or not hasattr(ctypes.CDLL(ctypes.util.find_library("c")),
                                                                            "mallinfo2"), reason="glibc ≥ 2.33 only")
def test_keep_freed_memory_serves_large_blocks_from_the_heap_and_keeps_them():
    default = json.loads(run(MALLINFO.format(repo=str(REPO), keep=False)))
    kept = json.loads(run(MALLINFO.format(repo=str(REPO), keep=True)))
    assert default["mapped"] >= 256 << 20  # glibc's default: a 256 MiB block is mmap'd (and unmapped on free)
    assert kept["applied"] and kept["mapped"] == 0 and kept["kept_free"] >= 256 << 20
