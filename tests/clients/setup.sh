#!/usr/bin/env bash
# The clients' venv (.venv-clients) for tests/test_deploy_clients.py: sentence-transformers' ONNX backend needs
# optimum-onnx, which requires transformers < 4.58 while ST 6.x requires transformers >= 5 (so
# `pip install 'sentence-transformers[onnx]'` cannot resolve with ST 6): ST 5.x with optimum-onnx, and fastembed,
# in a venv of their own. Run from the repository root.
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 -m venv .venv-clients
.venv-clients/bin/python -m pip install -q --upgrade pip
.venv-clients/bin/python -m pip install -q torch==2.13.0
.venv-clients/bin/python -m pip install -q 'sentence-transformers>=5.7,<6' 'optimum-onnx[onnxruntime]' \
    'transformers<4.58' fastembed
.venv-clients/bin/python -c "import sentence_transformers, optimum.onnxruntime, fastembed; print('clients venv:', \
sentence_transformers.__version__, fastembed.__version__ if hasattr(fastembed, '__version__') else '')"
