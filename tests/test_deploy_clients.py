"""An exported folder in the clients that deploy it (tests/clients/load_exported.py, run in the clients' venv that
tests/clients/setup.sh makes and CI runs first): sentence-transformers' backend="onnx" loads onnx/model.onnx
without exporting anything and gives `encode`'s embeddings (≤ 1e-5), its int8 file loads with
model_kwargs={"file_name": …}, fastembed's custom model on onnx/model.onnx gives them too, and ST's torch backend
still does with embedder's tokenizer files; and ST 5.7 loads an EmbeddingGemma-shaped folder (Dense modules)
embedder wrote."""

import json
import subprocess

import numpy as np
import pytest
import torch
from conftest import REPO
from safetensors.torch import save_file
from tiny_models import gemma3_folder

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


def test_st_5_loads_an_embeddinggemma_shaped_folder_embedder_wrote(tmp_path, minilm_folder):
    """A tiny Gemma3 (bidirectional) -> Pooling -> Dense -> Dense -> Normalize, saved by embedder: sentence-
    transformers 5.7 with transformers 4.57 (the clients' venv) loads it with embedder's embeddings (≤ 1e-5)."""
    if not CLIENTS.is_file():
        pytest.skip("the clients' venv is missing: run `bash tests/clients/setup.sh` (CI does, before the suite)")
    hf = gemma3_folder(tmp_path / "hf", minilm_folder)
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
               {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"},
               {"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"},
               {"idx": 4, "name": "4", "path": "4_Normalize", "type": "sentence_transformers.models.Normalize"}]
    (hf / "modules.json").write_text(json.dumps(modules))
    (hf / "1_Pooling").mkdir()
    (hf / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 32,
                                                              "pooling_mode_mean_tokens": True}))
    (hf / "4_Normalize").mkdir()
    torch.manual_seed(0)
    for folder, (n_in, n_out) in (("2_Dense", (32, 64)), ("3_Dense", (64, 32))):
        (hf / folder).mkdir()
        (hf / folder / "config.json").write_text(json.dumps({"in_features": n_in, "out_features": n_out, "bias": False,
                                                             "activation_function": "torch.nn.modules.linear.Identity"}))
        save_file({"linear.weight": torch.randn(n_out, n_in) / n_in ** 0.5}, str(hf / folder / "model.safetensors"))
    model = embedder.load(str(hf), device="cpu")
    model.save(tmp_path / "model")
    script = ("import json, sys; from sentence_transformers import SentenceTransformer; "
              "print(json.dumps(SentenceTransformer(sys.argv[1], device='cpu').encode(json.loads(sys.argv[2])).tolist()))")
    done = subprocess.run([str(CLIENTS), "-c", script, str(tmp_path / "model"), json.dumps(TEXTS)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    got = np.array(json.loads(done.stdout.strip().splitlines()[-1]), dtype=np.float32)
    assert got.shape == (len(TEXTS), 32) and np.abs(got - model.encode(TEXTS)).max() <= 1e-5
