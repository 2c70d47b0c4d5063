"""`python -m embedder export` and `train.py --export`, as a user runs them: the int8 files load and the fidelity
line is printed and written to the card; a failed export leaves the folder as it was; the trained folder carries
the ONNX files and no absolute path in any file; the start-up check of the output path leaves nothing there even
when it is killed half-way."""

import errno
import json
import os
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
from click.testing import CliRunner
from conftest import REPO
from tiny_models import gemma3_folder

import embedder
from embedder import files
from embedder.cli import main as cli_main
from embedder.model import onnx_export


def snapshot(folder):
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


@pytest.fixture
def saved_minilm(tmp_path, minilm_folder):
    folder = tmp_path / "minilm"
    embedder.load(str(minilm_folder), device="cpu").save(folder, model_card="# a card\n")
    return folder


def test_export_writes_int8_and_its_fidelity(saved_minilm, ir_data_dir):
    result = CliRunner().invoke(cli_main, ["export", str(saved_minilm), "--onnx", "--int8", "--int8-target", "avx2",
                                           "--eval", str(ir_data_dir / "val.json")])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("int8 against fp32"))
    low = float(line.split("minimum ")[1].split(";")[0])
    assert 0.98 < low <= 1.0
    assert "## Deploy: ONNX" in (saved_minilm / "README.md").read_text() and line in \
        (saved_minilm / "README.md").read_text()
    texts = ["What rights do people have?", "word " * 400]
    model = embedder.load(str(saved_minilm), device="cpu")
    feed = {k: v.numpy() for k, v in model.tokenizer(texts).items()}
    int8 = ort.InferenceSession(str(saved_minilm / "onnx" / "sentence_embedding_qint8_avx2.onnx"))
    got = int8.run(["sentence_embedding"], {i.name: feed[i.name] for i in int8.get_inputs()})[0]
    want = model.encode(texts)
    assert ((got * want).sum(1) / np.linalg.norm(got, axis=1)).min() > 0.98
    assert (saved_minilm / "onnx" / "model_qint8_avx2.onnx").is_file()
    assert not [p for p in saved_minilm.parent.iterdir() if ".export-" in p.name]  # no staging left


def test_a_failed_export_leaves_the_folder_as_it_was(saved_minilm, monkeypatch):
    before = snapshot(saved_minilm)

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(onnx_export, "quantize", disk_full)
    result = CliRunner().invoke(cli_main, ["export", str(saved_minilm), "--onnx", "--int8"])
    assert result.exit_code == 1 and "nothing was written" in result.output
    assert snapshot(saved_minilm) == before
    assert not [p for p in saved_minilm.parent.iterdir() if ".export-" in p.name]


def test_export_refuses_what_is_not_a_model(tmp_path):
    result = CliRunner().invoke(cli_main, ["export", str(tmp_path), "--onnx"])
    assert result.exit_code == 2 and "holds no model" in result.output


def test_train_export_and_no_absolute_path_in_the_output(tmp_path, ir_data_dir):
    output = tmp_path / "runs" / "minilm"
    done = subprocess.run([sys.executable, str(REPO / "train.py"), "--base", "all-MiniLM-L6-v2", "--train",
                           str(ir_data_dir / "train.json"), "--max-steps", "2", "--merge", "off", "--export", "int8",
                           "--output", str(output)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "int8 against fp32 on validation" in done.stdout
    assert {p.name for p in (output / "onnx").iterdir()} >= {"model.onnx", "sentence_embedding.onnx"}
    for path in output.rglob("*"):
        if path.suffix in (".json", ".jsonl", ".md"):
            text = path.read_text(encoding="utf-8")
            for absolute in (str(tmp_path), str(ir_data_dir), str(REPO)):
                assert absolute not in text, f"{path.name} holds {absolute}"
    config = json.loads((output / "train_config.json").read_text())
    assert config["train"] == ["train.json"] and config["output"] == "minilm" and config["export"] == ["onnx", "int8"]


def test_train_export_of_a_backbone_torch_onnx_cannot_trace_saves_the_model_and_says_so(tmp_path, minilm_folder,
                                                                                        ir_data_dir):
    """A tiny Gemma3 (EmbeddingGemma's backbone; transformers builds its masks with vmap, which the tracer cannot
    follow): train.py --export onnx ends with one line naming --export and why, exit 2, and the trained model is
    saved all the same, without ONNX files, loadable by ST."""
    from sentence_transformers import SentenceTransformer
    base = gemma3_folder(tmp_path / "gemma", minilm_folder)
    output = tmp_path / "out"
    done = subprocess.run([sys.executable, str(REPO / "train.py"), "--base", str(base), "--train",
                           str(ir_data_dir / "train.json"), "--max-steps", "2", "--batch-size", "8", "--merge", "off",
                           "--eval", "none", "--export", "onnx", "--output", str(output)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 2, done.stderr[-2000:]
    [line] = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert "--export onnx" in line and "cannot trace" in line and "gemma3_text" in line and str(output) in line
    assert "Traceback" not in done.stderr
    assert not (output / "onnx").exists() and not (output / "openvino").exists()
    texts = ["What rights do people have?"]
    loaded = SentenceTransformer(str(output), device="cpu").encode(texts)
    assert np.abs(loaded - embedder.load(str(output), device="cpu").encode(texts)).max() <= 1e-5


def test_the_output_check_makes_nothing_at_the_output_even_if_killed(tmp_path, monkeypatch):
    """A kill before the check's clean-up: only a hidden folder of the check's own is left, in the nearest existing
    folder; nothing at the output's path, its staging or checkpoint names, or its missing parents."""
    monkeypatch.setattr(files.shutil, "rmtree", lambda *args, **kwargs: None)  # the clean-up never runs
    files.check_output(tmp_path / "new" / "out", "--output", siblings=("{name}.checkpoints",))
    assert [p.name.startswith(".write-test-") for p in tmp_path.iterdir()] == [True]
    with pytest.raises(Exception, match="refuses this path"):
        files.check_output(tmp_path / ("x" * 300), "--output")
