"""The deployable files of a model folder (embedder/model/onnx_export.py) and what int8 costs, measured.

int8 fidelity, on an IR set's texts T (its queries and passages), with e32 and e8 the fp32 and int8 sentence
graphs' embeddings (ONNX Runtime alone, as a deployment runs them):
    c(t) = ⟨e32(t), e8(t)⟩ / (‖e32(t)‖ ‖e8(t)‖),   reported: mean and minimum of c over T;
    cosine_map@100 of the set with each graph (embedder/eval/ir.py), the change retrieval sees.
A drop of map@100 by more than MAX_MAP_DROP gets a warning line. The model card gains a "Deploy" section with the
files, how to load them and this measurement.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.specs import load_eval_set
from ..errors import UserError
from ..model import onnx_export
from ..model.embedder import Embedder
from ..model.onnx_export import ONNX_FOLDER, SENTENCE_FILE, OnnxSentenceEncoder, int8_file
from .ir import InformationRetrievalEvaluator

MAX_MAP_DROP = 0.01
CARD_HEADING = "## Deploy: ONNX"


@dataclass
class Int8Fidelity:
    set_name: str
    texts: int
    cos_mean: float
    cos_min: float
    map_fp32: float
    map_int8: float

    def line(self) -> str:
        return (f"int8 against fp32 on {self.set_name} ({self.texts} texts): cosine mean {self.cos_mean:.4f}, "
                f"minimum {self.cos_min:.4f}; cosine_map@100 {self.map_fp32:.4f} -> {self.map_int8:.4f}")

    def warning(self) -> str | None:
        drop = self.map_fp32 - self.map_int8
        if drop > MAX_MAP_DROP:
            return (f"WARNING: int8 lowers cosine_map@100 on {self.set_name} by {drop:.4f} (more than "
                    f"{MAX_MAP_DROP}); deploy the fp32 graph where that matters")
        return None


def int8_fidelity(onnx_dir: Path, target: str, tokenizer, ir, set_name: str, batch_size: int = 32) -> Int8Fidelity:
    fp32 = OnnxSentenceEncoder(onnx_dir / SENTENCE_FILE, tokenizer)
    int8 = OnnxSentenceEncoder(onnx_dir / int8_file(SENTENCE_FILE[:-5], target), tokenizer)
    texts = list(dict.fromkeys([*ir.queries.values(), *ir.corpus.values()]))
    a, b = fp32.encode(texts, batch_size=batch_size), int8.encode(texts, batch_size=batch_size)
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    evaluator = InformationRetrievalEvaluator(ir.queries, ir.corpus, ir.relevant, score_functions=("cosine",),
                                              batch_size=batch_size)
    return Int8Fidelity(set_name, len(texts), float(cos.mean()), float(cos.min()),
                        evaluator(Encoded(texts, a))["cosine_map@100"], evaluator(Encoded(texts, b))["cosine_map@100"])


class Encoded:
    """Embeddings computed once, served to the IR evaluator by text (its `encode` signature), so scoring does not
    run the graph a second time."""

    def __init__(self, texts: list[str], vectors: np.ndarray):
        self.row = {text: i for i, text in enumerate(texts)}
        self.vectors = torch.from_numpy(vectors)

    def encode(self, texts, **_):
        return self.vectors[[self.row[text] for text in texts]]


def card_section(written: list[str], dims: tuple[int, ...], target: str | None, fidelity: Int8Fidelity | None) -> str:
    outputs = ", ".join(onnx_export.output_names(dims))
    lines = [CARD_HEADING, "", "Exported by embedder with the model, so that no client has to export it again:", ""]
    lines += [f"- `{name}`" for name in written]
    lines += ["", "```python", "from sentence_transformers import SentenceTransformer",
              'model = SentenceTransformer("PATH", backend="onnx")   # onnx/model.onnx']
    if target:
        lines += [f'model = SentenceTransformer("PATH", backend="onnx", model_kwargs={{"file_name": '
                  f'"{int8_file("model", target)}"}})']
    lines += ["```", "", f"`{ONNX_FOLDER}/{SENTENCE_FILE}` runs the whole model in ONNX Runtime alone: token ids "
              f"(`tokenizer.json`) in, the finished embedding out ({outputs})."]
    if fidelity:
        lines += ["", f"int8 ({target}): {fidelity.line()}."]
    return "\n".join(lines) + "\n"


def export_with_report(folder: Path, into: Path, kinds: tuple[str, ...], dims: tuple[int, ...], target: str,
                       eval_set, set_name: str, echo) -> None:
    """Export the model saved at `folder` into `into` (onnx_export.export), measure int8 on `eval_set` when asked,
    echo what was written and measured, and append the card section to `into`/README.md when there is one."""
    int8 = target if "int8" in kinds else None
    model = Embedder.load(str(folder), device="cpu")
    written, dims = onnx_export.export(folder, into, dims=dims, int8_target=int8, openvino="openvino" in kinds,
                                       model=model)
    echo(f"exported {', '.join(written)}")
    fidelity = None
    if int8:
        fidelity = int8_fidelity(into / ONNX_FOLDER, int8, model.tokenizer, eval_set, set_name)
        echo(fidelity.line())
        if fidelity.warning():
            echo(fidelity.warning(), err=True)
    card = into / "README.md"
    source = card if card.is_file() else folder / "README.md"
    if source.is_file():
        text = source.read_text(encoding="utf-8")
        text = text.split("\n" + CARD_HEADING + "\n")[0].rstrip("\n")  # a re-export replaces the section
        card.write_text(text + "\n\n" + card_section(written, dims, int8, fidelity), encoding="utf-8")


class StagingExport:
    """What `train.py --export` writes into the run's staging folder once the model is there: the export, int8
    measured on the run's first validation set (the embedded stdlib:val when the run has none). An export that
    fails (an architecture torch.onnx cannot trace, a graph whose embeddings differ from encode's) leaves the model
    folder without its files and keeps the reason in `failure`, so the trained model is saved all the same."""

    def __init__(self, kinds: tuple[str, ...], dims: tuple[int, ...], eval_sets, echo):
        self.kinds, self.dims, self.echo = kinds, dims, echo
        self.eval_set = eval_sets[0] if eval_sets else ("stdlib:val", load_eval_set("stdlib:val"))
        self.failure: str | None = None

    def __call__(self, staging: Path) -> None:
        name, ir = self.eval_set
        try:
            export_with_report(staging, staging, self.kinds, self.dims, onnx_export.host_int8_target(), ir, name,
                               self.echo)
        except (UserError, ValueError) as err:  # an untraceable backbone; a graph that differs from encode
            for part in (ONNX_FOLDER, onnx_export.OPENVINO_FOLDER):
                shutil.rmtree(staging / part, ignore_errors=True)
            self.failure = str(err)


__all__ = ["CARD_HEADING", "Int8Fidelity", "MAX_MAP_DROP", "StagingExport", "export_with_report", "int8_fidelity"]
