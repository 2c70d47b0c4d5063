"""torchrun on the CPU (gloo, 2 processes): after k steps with dropout off, the model equals a single-process run
with the global batch (<= 1e-5), with and without Matryoshka, with GradCache under torchrun too, and with every
loss direction (the anchors gathered as well). At fp32: the processes embed different slices, so under bf16
autocast the rounding (not the math) would differ."""

import json
import subprocess
import sys

import pytest
from conftest import REPO
from safetensors.torch import load_file


def _pairs(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({"anchor": f"what is item {i} about topic {i % 7}?",
                                        "positive": f"item {i} is about topic {i % 7}" + " and more" * (i % 5)}) + "\n"
                            for i in range(40)))
    return path


def _train(args, processes: int, cwd):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"] \
        if processes > 1 else [sys.executable]
    result = subprocess.run([*launcher, str(REPO / "train.py"), *args], capture_output=True, text=True, cwd=cwd,
                            timeout=900, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.parametrize("extra", [["--matryoshka-dims", "none"], ["--matryoshka-dims", "32,16,8"],
                                   ["--matryoshka-dims", "32,8", "--mini-batch-size", "3"],
                                   ["--matryoshka-dims", "32,8", "--directions",
                                    "query_to_doc,query_to_query,doc_to_query,doc_to_doc"]],
                         ids=["mnrl", "matryoshka", "matryoshka-gradcache", "matryoshka-all-directions"])
def test_two_processes_equal_one_with_the_global_batch(tiny_bert_no_dropout, tmp_path, extra):
    common = ["--base", str(tiny_bert_no_dropout), "--train", str(_pairs(tmp_path)), "--eval", "none",
              "--max-steps", "4", "--keep-last", "--lr", "1e-4", "--precision", "fp32", *extra]
    _train([*common, "--batch-size", "8", "--output", str(tmp_path / "single")], 1, tmp_path)
    result = _train([*common, "--batch-size", "4", "--output", str(tmp_path / "ddp")], 2, tmp_path)
    assert "global batch 8" in result.stdout and "negatives per query: 7 (7 in-batch)" in result.stdout
    single = load_file(str(tmp_path / "single" / "model.safetensors"))
    ddp = load_file(str(tmp_path / "ddp" / "model.safetensors"))
    base = load_file(str(tiny_bert_no_dropout / "model.safetensors"))
    assert max((single[k] - ddp[k]).abs().max().item() for k in single) <= 1e-5
    assert max((single[k] - base[k]).abs().max().item() for k in base if k in single) > 1e-4  # it did train


def test_resume_under_torchrun(tiny_bert_folder, tmp_path):
    """Checkpoints under torchrun hold every rank's RNG: resuming from step 2 ends with the uninterrupted weights
    (dropout on)."""
    import shutil
    common = ["--base", str(tiny_bert_folder), "--train", str(_pairs(tmp_path)), "--eval", "none", "--batch-size", "4",
              "--max-steps", "6", "--save-steps", "2", "--keep-last", "--matryoshka-dims", "none", "--precision", "fp32"]
    _train([*common, "--output", str(tmp_path / "straight")], 2, tmp_path)
    (tmp_path / "resumed.checkpoints").mkdir()
    shutil.copytree(tmp_path / "straight.checkpoints" / "step-2", tmp_path / "resumed.checkpoints" / "step-2")
    result = _train([*common, "--output", str(tmp_path / "resumed"), "--resume"], 2, tmp_path)
    assert "resumed from" in result.stdout
    a = load_file(str(tmp_path / "straight" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "model.safetensors"))
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6


@pytest.mark.parametrize("extra", [[], ["--mini-batch-size", "2"]], ids=["plain", "gradcache"])
def test_a_last_batch_smaller_than_the_process_count(tiny_bert_no_dropout, tmp_path, extra):
    """9 rows, 2 processes x batch 4: the last global batch has 1 row, so process 1 has none of it. The run
    finishes and equals one process with batch 8 (which trains on that 1-row batch too)."""
    pairs = tmp_path / "nine.jsonl"
    pairs.write_text("".join(json.dumps({"anchor": f"question {i} about topic {i}?", "positive": f"topic {i} passage"})
                             + "\n" for i in range(9)))
    common = ["--base", str(tiny_bert_no_dropout), "--train", str(pairs), "--eval", "none", "--epochs", "1",
              "--keep-last", "--lr", "1e-4", "--matryoshka-dims", "none", "--precision", "fp32", *extra]
    _train([*common, "--batch-size", "8", "--output", str(tmp_path / "single")], 1, tmp_path)
    result = _train([*common, "--batch-size", "4", "--output", str(tmp_path / "ddp")], 2, tmp_path)
    assert "2 per epoch x 1 epochs = 2 optimiser steps" in result.stdout
    single = load_file(str(tmp_path / "single" / "model.safetensors"))
    ddp = load_file(str(tmp_path / "ddp" / "model.safetensors"))
    assert max((single[k] - ddp[k]).abs().max().item() for k in single) <= 1e-5
