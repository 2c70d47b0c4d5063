"""ONNX (and OpenVINO) export of a saved model folder, in sentence-transformers' backend layout.

With token ids x and attention mask m (B, L), T = Transformer(x, m) the token embeddings (B, L, H), the files are:
- `onnx/model.onnx` — T itself: inputs `input_ids`, `attention_mask` (and `token_type_ids` where the tokenizer
  makes them), int64 (batch_size, sequence_length); output `last_hidden_state` (B, L, H) float32. What ST's
  `backend="onnx"` loads (it pools in Python), and fastembed's custom models.
- `onnx/sentence_embedding.onnx` — the whole chain, so ONNX Runtime alone gives the finished vector: the same
  inputs; output `sentence_embedding` e = Normalize(Dense…(Pooling(T, m))) (B, D), the Dense modules and Normalize
  only where the model has them;
  and for each Matryoshka dim d < D the model was trained with, `sentence_embedding_{d}` = e[:, :d] / ‖e[:, :d]‖
  (the truncation, renormalised where the model normalises: ST's `encode(truncate_dim=d,
  normalize_embeddings=True)`). ONNX Runtime computes only the outputs asked for.
- `onnx/model_qint8_{target}.onnx`, `onnx/sentence_embedding_qint8_{target}.onnx` — dynamic int8 (`INT8_TARGETS`,
  ST's names): the weight W of each MatMul but those `kept_in_float` names, quantised per output channel j,
  W_ij ≈ s_j · q_ij with q_ij ∈ [-127, 127] and s_j = max_i |W_ij| / 127 (avx2: 7 bits, q ∈ [-63, 63], as ONNX
  Runtime advises against the saturation of AVX2's u8·s8 products), its input to uint8 per tensor (per batch) at
  run time; embeddings, LayerNorm and the rest stay float32. Per-tensor activations make a text's int8 error depend
  on its batch: a degenerate text ("word word word …") can fall to cosine 0.66 for all-mpnet-base-v2.
- `openvino/openvino_model.xml` (+ `.bin`) — OpenVINO IR of model.onnx, float32 (OpenVINO would store fp16).

The graphs are traced from transformers' AutoModel on the folder's own config.json and model.safetensors with
eager attention, and checked against `Embedder.encode` before anything is kept (`check_fidelity`). Needs the
`onnx` extra (onnx, onnxruntime) and, for OpenVINO, the `openvino` extra; without them one line says what to
install.
"""

from __future__ import annotations

import contextlib
import io
import logging
import platform
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import AutoModel
from transformers.utils import logging as hf_logging

from ..errors import UserError, require
from .embedder import Embedder

ONNX_FOLDER = "onnx"
OPENVINO_FOLDER = "openvino"
TRANSFORMER_FILE = "model.onnx"
SENTENCE_FILE = "sentence_embedding.onnx"
OPENVINO_FILE = "openvino_model.xml"
INT8_TARGETS = ("avx512_vnni", "avx2", "arm64")
EXPORTS = ("onnx", "int8", "openvino")  # what `--export` may name; int8 and openvino imply onnx
OPSET = 17
CHECK_TEXTS = ("What rights do people have?", "Short.", "A longer passage about retrieval, with punctuation; "
               "numbers 3.14 and 42, and a few more words to make it longer than the others. " * 3)
FP32_TOLERANCE = 1e-4  # the traced graph against encode, max abs; measured 1e-7 to 1e-6 on the three test models


def require_extras(kinds: tuple[str, ...]) -> None:
    """UserError naming the pip command unless what `kinds` (EXPORTS) needs is installed."""
    if kinds:
        require("onnx", "onnxruntime", extra="onnx")
    if "openvino" in kinds:
        require("openvino", extra="openvino")


def int8_file(stem: str, target: str) -> str:
    return f"{stem}_qint8_{target}.onnx"


def host_int8_target() -> str:
    """ST's int8 target for this CPU: arm64 on Arm, avx512_vnni where the CPU has VNNI, avx2 otherwise."""
    if platform.machine().lower() in ("arm64", "aarch64"):
        return "arm64"
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        flags = ""
    return "avx512_vnni" if "avx512_vnni" in flags else "avx2"


class TransformerGraph(nn.Module):
    """Token ids and mask -> token embeddings, through transformers' AutoModel."""

    def __init__(self, auto_model: nn.Module, input_names: tuple[str, ...]):
        super().__init__()
        self.auto_model = auto_model
        self.input_names = input_names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.auto_model(**dict(zip(self.input_names, inputs))).last_hidden_state


class SentenceGraph(nn.Module):
    """Token ids and mask -> the sentence embedding, and its Matryoshka truncations."""

    def __init__(self, transformer: TransformerGraph, pooling: nn.Module, dense: nn.ModuleList, normalize: bool,
                 dims: tuple[int, ...]):
        super().__init__()
        self.transformer, self.pooling, self.dense = transformer, pooling, dense
        self.normalize, self.dims = normalize, dims

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        mask = inputs[self.transformer.input_names.index("attention_mask")]
        embedding = self.pooling(self.transformer(*inputs), mask)
        for module in self.dense:
            embedding = module(embedding)
        if self.normalize:
            embedding = nn.functional.normalize(embedding, p=2, dim=1)
        truncated = [embedding[:, :d] for d in self.dims]
        if self.normalize:
            truncated = [nn.functional.normalize(t, p=2, dim=1) for t in truncated]
        return (embedding, *truncated)


def output_names(dims: tuple[int, ...]) -> list[str]:
    return ["sentence_embedding", *(f"sentence_embedding_{d}" for d in dims)]


def _trace(module: nn.Module, example: tuple, path: Path, input_names: list[str], outputs: list[str]) -> None:
    axes = {name: {0: "batch_size", 1: "sequence_length"} for name in input_names}
    axes.update({name: ({0: "batch_size", 1: "sequence_length"} if name == "last_hidden_state" else {0: "batch_size"})
                 for name in outputs})
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(module, example, str(path), dynamo=False, input_names=input_names, output_names=outputs,
                          dynamic_axes=axes, opset_version=OPSET, do_constant_folding=True)


def kept_in_float(graph) -> list[str]:
    """The MatMul nodes int8 leaves in float32: those without a weight (attention's scores and mixing: both inputs
    are activations) and the feed-forward down projections (a weight wider in than out, W: (F, H) with F > H),
    whose input — the activation's output — carries the outliers that per-tensor uint8 cannot hold."""
    weights = {init.name: tuple(init.dims) for init in graph.initializer}
    kept = []
    for node in graph.node:
        if node.op_type != "MatMul":
            continue
        shapes = [weights[name] for name in node.input if name in weights]
        if not shapes or len(shapes[0]) == 2 and shapes[0][0] > shapes[0][1]:
            kept.append(node.name)
    return kept


def quantize(source: Path, target_path: Path, target: str) -> None:
    """Dynamic int8 of `source` (see the module docstring and `kept_in_float`)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    kept = kept_in_float(onnx.load(str(source), load_external_data=False).graph)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), quiet_logging():
        warnings.simplefilter("ignore")
        quantize_dynamic(str(source), str(target_path), per_channel=True, weight_type=QuantType.QInt8,
                         reduce_range=target == "avx2", op_types_to_quantize=["MatMul"], nodes_to_exclude=kept)


@contextlib.contextmanager
def quiet_logging():
    """onnxruntime's quantiser logs advice on the root logger; the export prints its own lines."""
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


class OnnxSentenceEncoder:
    """`encode` through a sentence_embedding graph and the model's tokenizer, with the signature the IR evaluator
    calls (embedder/eval/ir.py): ONNX Runtime alone, as a deployed model runs."""

    def __init__(self, path: Path, tokenizer, output: str = "sentence_embedding"):
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.tokenizer, self.output = tokenizer, output

    def run(self, texts: list[str], outputs: list[str]) -> list[np.ndarray]:
        """The graph's `outputs` for one batch of texts (ONNX Runtime computes only those)."""
        features = self.tokenizer(list(texts))
        feed = {name: features[name].numpy().astype(np.int64) for name in self.input_names}
        return self.session.run(outputs, feed)

    def encode(self, texts, batch_size: int = 32, convert_to_numpy: bool = True, prompt: str | None = None, **_):
        texts = [prompt + t for t in texts] if prompt else list(texts)
        order = np.argsort([-len(t) for t in texts])
        chunks = [self.run([texts[i] for i in order[s:s + batch_size]], [self.output])[0]
                  for s in range(0, len(texts), batch_size)]
        stacked = np.concatenate(chunks)[np.argsort(order)] if chunks else np.zeros((0, 0), np.float32)
        return stacked if convert_to_numpy else torch.from_numpy(stacked)


def export(folder: Path, into: Path, *, dims: tuple[int, ...] = (), int8_target: str | None = None,
           openvino: bool = False, model: Embedder | None = None) -> tuple[list[str], tuple[int, ...]]:
    """Write the ONNX files of the model saved at `folder` under `into` (`into/onnx/…`, `into/openvino/…`; `into` is
    `folder` itself or a staging folder). Returns the files written, relative to `into`, and the Matryoshka dims
    the sentence graph outputs (those of `dims` below the width). ValueError when the traced graph differs from
    `encode`. model: the folder's model already loaded on the CPU, if the caller has it."""
    require_extras(("onnx",) + (("openvino",) if openvino else ()))
    model = model or Embedder.load(str(folder), device="cpu")
    if not model.pooling.include_prompt:
        raise UserError(f"{folder}: its pooling leaves the prompt out (include_prompt false), which a graph of token "
                        "ids cannot know; export without the sentence graph is not offered for such models")
    dims = tuple(d for d in dims if d < model.embedding_dimension)
    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # "Loading weights" of the folder just written
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            auto = AutoModel.from_pretrained(str(model.source_dir), attn_implementation="eager").eval()
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    names = tuple(n for n in model.tokenizer.hf.model_input_names if n in ("input_ids", "attention_mask",
                                                                            "token_type_ids"))
    transformer = TransformerGraph(auto, names)
    sentence = SentenceGraph(transformer, model.pooling, model.dense, model.normalize is not None, dims).eval()
    features = model.tokenizer(list(CHECK_TEXTS))
    example = tuple(features[n] for n in names)
    onnx_dir = into / ONNX_FOLDER
    onnx_dir.mkdir(parents=True, exist_ok=True)
    written = []
    try:
        _trace(transformer, example, onnx_dir / TRANSFORMER_FILE, list(names), ["last_hidden_state"])
        _trace(sentence, example, onnx_dir / SENTENCE_FILE, list(names), output_names(dims))
    except Exception as err:  # the TorchScript tracer on code it cannot follow (vmap-built masks, data-dependent loops)
        first = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise UserError(f"{folder}: torch.onnx cannot trace its {model.hf_config.get('model_type', 'transformer')} "
                        f"backbone ({first}); use the model folder as it is, without the ONNX export") from None
    written += [f"{ONNX_FOLDER}/{TRANSFORMER_FILE}", f"{ONNX_FOLDER}/{SENTENCE_FILE}"]
    check_fidelity(model, onnx_dir / SENTENCE_FILE, dims)
    if int8_target:
        for stem in (TRANSFORMER_FILE, SENTENCE_FILE):
            quantize(onnx_dir / stem, onnx_dir / int8_file(stem[:-5], int8_target), int8_target)
            written.append(f"{ONNX_FOLDER}/{int8_file(stem[:-5], int8_target)}")
    if openvino:
        import openvino as ov
        (into / OPENVINO_FOLDER).mkdir(exist_ok=True)
        ov.save_model(ov.convert_model(str(onnx_dir / TRANSFORMER_FILE)), str(into / OPENVINO_FOLDER / OPENVINO_FILE),
                      compress_to_fp16=False)
        written += [f"{OPENVINO_FOLDER}/{OPENVINO_FILE}", f"{OPENVINO_FOLDER}/{OPENVINO_FILE[:-4]}.bin"]
    return written, dims


def check_fidelity(model, sentence_path: Path, dims: tuple[int, ...]) -> None:
    """ValueError unless the sentence graph gives `encode`'s vectors (FP32_TOLERANCE), full and truncated, on texts
    of other lengths and a batch size other than the trace's."""
    texts = [*CHECK_TEXTS, "x " * (2 * model.max_seq_length), "One more."]
    expected = model.encode(texts, batch_size=4)
    outputs = OnnxSentenceEncoder(sentence_path, model.tokenizer).run(texts, output_names(dims))
    for d, got in zip((None, *dims), outputs):
        want = expected[:, :d] if d else expected
        if d and model.normalize is not None:
            want = want / np.linalg.norm(want, axis=1, keepdims=True)
        worst = float(np.abs(got - want).max())
        if not worst <= FP32_TOLERANCE:
            raise ValueError(f"the ONNX graph's embeddings differ from encode's by {worst:.2e} "
                             f"(dim {d or model.embedding_dimension}); nothing was exported")


__all__ = ["INT8_TARGETS", "OnnxSentenceEncoder", "export", "host_int8_target", "int8_file", "require_extras"]
