"""ONNX export against `encode` (embedder/model/onnx_export.py), run the way a deployment runs it: ONNX Runtime
alone, fed by the raw `tokenizers` library reading the folder's tokenizer.json — no torch, no transformers. For the
real all-MiniLM-L6-v2 and all-mpnet-base-v2 (Matryoshka outputs), a bge-like model (CLS pooling, lower-casing
asked by sentence_bert_config.json over a cased tokenizer) and a tiny BERT with a Dense module (32 -> 16, Tanh)
before Normalize, saved by ST, on texts past max_seq_length: ≤ 1e-5 max abs. ST's own
onnx backend and fastembed load the same files in tests/test_deploy_clients.py."""

import shutil

import numpy as np
import onnxruntime as ort
import pytest
import torch
from tokenizers import Tokenizer
from tiny_models import cased_bert_folder, classic_bge_like

import embedder
from embedder.model import onnx_export
from embedder.model.onnx_export import kept_in_float

TOLERANCE = 1e-5


def st_with_dense(root, minilm_folder):
    """A tiny BERT -> mean Pooling -> Dense(32 -> 16, Tanh) -> Normalize, saved by sentence-transformers."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Dense, Normalize, Pooling, Transformer
    modules = [Transformer(str(cased_bert_folder(root / "hf", minilm_folder)), max_seq_length=48),
               Pooling(32, pooling_mode="mean"), Dense(32, 16), Normalize()]
    SentenceTransformer(modules=modules, device="cpu").save(str(root / "source"))
    return root / "source"


@pytest.fixture(scope="module", params=["all-MiniLM-L6-v2", "all-mpnet-base-v2", "bge-like", "dense"])
def exported(request, tmp_path_factory, minilm_folder, mpnet_folder):
    """(folder, dims): the model saved by embedder, then exported into itself."""
    root = tmp_path_factory.mktemp("onnx")
    (root / "hf").mkdir()
    source = {"all-MiniLM-L6-v2": minilm_folder, "all-mpnet-base-v2": mpnet_folder}.get(request.param)
    if request.param == "bge-like":
        source = classic_bge_like(root / "source", minilm_folder)
    elif request.param == "dense":
        source = st_with_dense(root, minilm_folder)
    dims = {"all-mpnet-base-v2": (512, 256, 64), "bge-like": (16,), "dense": (8,)}.get(request.param, ())
    embedder.load(str(source), device="cpu").save(root / "model")
    written, used = onnx_export.export(root / "model", root / "model", dims=dims)
    assert used == dims and written == ["onnx/model.onnx", "onnx/sentence_embedding.onnx"]
    yield root / "model", dims
    shutil.rmtree(root, ignore_errors=True)  # 1.3 GB for mpnet: CI's disk holds one such folder at a time


def ort_alone(folder, texts, graph, outputs):
    """What a client without torch does: tokenizer.json's own truncation and padding, then ONNX Runtime."""
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    session = ort.InferenceSession(str(folder / "onnx" / graph), providers=["CPUExecutionProvider"])
    encodings = tokenizer.encode_batch(texts)
    arrays = {"input_ids": [e.ids for e in encodings], "attention_mask": [e.attention_mask for e in encodings],
              "token_type_ids": [e.type_ids for e in encodings]}
    feed = {i.name: np.array(arrays[i.name], dtype=np.int64) for i in session.get_inputs()}
    return session.run(outputs, feed), feed["attention_mask"]


def test_sentence_graph_alone_matches_encode(exported, varied_texts):
    folder, dims = exported
    model = embedder.load(str(folder), device="cpu")
    expected = model.encode(varied_texts)
    assert max(len(t.split()) for t in varied_texts) > model.max_seq_length  # texts past the limit
    outputs = onnx_export.output_names(dims)
    got, _ = ort_alone(folder, varied_texts, "sentence_embedding.onnx", outputs)
    assert np.abs(got[0] - expected).max() <= TOLERANCE
    for d, truncated in zip(dims, got[1:]):
        want = model.encode(varied_texts, truncate_dim=d, normalize_embeddings=True)
        assert truncated.shape == (len(varied_texts), d)
        assert np.abs(truncated - want).max() <= TOLERANCE


def test_transformer_graph_gives_token_embeddings_that_pool_to_encode(exported, varied_texts):
    folder, _ = exported
    model = embedder.load(str(folder), device="cpu")
    (tokens,), mask = ort_alone(folder, varied_texts, "model.onnx", ["last_hidden_state"])
    with torch.no_grad():  # pooling, then the Dense modules and Normalize where the model has them
        pooled = model.sentence_embedding(torch.from_numpy(tokens), {"attention_mask": torch.from_numpy(mask)})
    assert np.abs(pooled.numpy() - model.encode(varied_texts)).max() <= TOLERANCE


def test_int8_leaves_attention_and_down_projections_in_float():
    """kept_in_float on a hand-made graph: a MatMul of two activations and a (4, 2) weight are kept, a (2, 4) one
    is quantised."""
    import onnx
    from onnx import helper, numpy_helper
    up = numpy_helper.from_array(np.ones((2, 4), np.float32), "up")
    down = numpy_helper.from_array(np.ones((4, 2), np.float32), "down")
    nodes = [helper.make_node("MatMul", ["x", "x_t"], ["scores"], name="scores"),
             helper.make_node("MatMul", ["x", "up"], ["h"], name="up_proj"),
             helper.make_node("MatMul", ["h", "down"], ["y"], name="down_proj")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None)
                                           for n in ("x", "x_t")],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)], [up, down])
    assert kept_in_float(graph) == ["scores", "down_proj"]


def test_export_needs_the_extra_and_says_what_to_install(monkeypatch):
    from embedder.errors import UserError
    with pytest.raises(UserError, match=r"pip install 'embedder\[onnx\]'"):
        onnx_export.require("onnx", "a_module_that_is_not_installed", extra="onnx")


def test_openvino_ir_matches_encode_at_fp32(tmp_path, minilm_folder, varied_texts):
    """OpenVINO IR converted from model.onnx, run at fp32 (OpenVINO picks bf16 on a CPU that has it unless told:
    1.3e-3 off here), pooled: encode's embeddings."""
    import openvino as ov
    folder = tmp_path / "model"
    model = embedder.load(str(minilm_folder), device="cpu")
    model.save(folder)
    written, _ = onnx_export.export(folder, folder, openvino=True)
    assert "openvino/openvino_model.xml" in written
    compiled = ov.Core().compile_model(str(folder / "openvino" / "openvino_model.xml"), "CPU",
                                       {"INFERENCE_PRECISION_HINT": "f32"})
    features = model.tokenizer(varied_texts)
    tokens = compiled({i.get_any_name(): features[i.get_any_name()].numpy() for i in compiled.inputs})[0]
    pooled = model.sentence_embedding(torch.from_numpy(tokens), features).numpy()
    assert np.abs(pooled - model.encode(varied_texts)).max() <= TOLERANCE
