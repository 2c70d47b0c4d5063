"""An exported folder in the clients that deploy it (tests/clients/load_exported.py, run in the clients' venv that
tests/clients/setup.sh makes and CI runs first): sentence-transformers' backend="onnx" loads onnx/model.onnx
without exporting anything and gives `encode`'s embeddings (≤ 1e-5), its int8 file loads with
model_kwargs={"file_name": …}, fastembed's custom model on onnx/model.onnx gives them too, and ST's torch backend
still does with embedder's tokenizer files."""

import json
import subprocess

import pytest
from conftest import REPO

import embedder
from embedder.model import onnx_export

CLIENTS = REPO / ".venv-clients" / "bin" / "python"
TEXTS = ["What rights do people have?", "The quick brown fox jumps over the lazy dog. " * 40,  # past max_seq_length
         "Short", "Ünïcödé straße naïve café", "How should automated systems protect people from algorithmic bias?"]


@pytest.mark.parametrize("which", ["minilm_folder", "mpnet_folder"])
def test_clients_load_the_export_without_exporting(which, request, tmp_path):
    if not CLIENTS.is_file():
        pytest.skip("the clients' venv is missing: run `bash tests/clients/setup.sh` (CI does, before the suite)")
    folder = tmp_path / "model"
    model = embedder.load(str(request.getfixturevalue(which)), device="cpu")
    model.save(folder)
    onnx_export.export(folder, folder, int8_target="avx2")
    reference = tmp_path / "reference.json"
    reference.write_text(json.dumps({"texts": TEXTS, "embeddings": model.encode(TEXTS).tolist()}))
    done = subprocess.run([str(CLIENTS), str(REPO / "tests" / "clients" / "load_exported.py"), str(folder),
                           str(reference), "model_qint8_avx2.onnx", str(model.embedding_dimension)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["st_exported"] == []
    assert found["st_torch"] <= 1e-5 and found["st_onnx"] <= 1e-5 and found["fastembed"] <= 1e-5
    assert found["st_int8_min_cosine"] > 0.95  # measured 0.98-0.99 (README, "Deploy")
