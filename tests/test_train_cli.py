"""train.py end to end, as a user runs it (subprocesses, CPU, all-MiniLM-L6-v2, a few steps): the output folder
loads in sentence-transformers with the same embeddings, carries a model card and the training log; user mistakes
exit 2 with one line and write nothing; a run killed with SIGKILL resumes to the same weights as an uninterrupted
run."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest
from conftest import REPO
from safetensors.torch import load_file
from sentence_transformers import SentenceTransformer

import embedder


def run_train(*args, cwd=None, wait=True):
    command = [sys.executable, str(REPO / "train.py"), "--base", "all-MiniLM-L6-v2", *args]
    if not wait:
        return subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd or REPO, timeout=900)


@pytest.fixture(scope="module")
def small_ir(tmp_path_factory, ir_data_dir):
    """aipolicy val cut to 40 questions: a fast evaluation set."""
    data = json.loads((ir_data_dir / "val.json").read_text())
    keep = list(data["questions"])[:40]
    relevant = {q: data["relevant_contexts"][q] for q in keep}
    corpus_ids = {p for q in keep for p in relevant[q]}
    small = {"questions": {q: data["questions"][q] for q in keep},
             "corpus": {p: t for p, t in data["corpus"].items() if p in corpus_ids}, "relevant_contexts": relevant}
    path = tmp_path_factory.mktemp("ir") / "small_val.json"
    path.write_text(json.dumps(small))
    return path


def test_train_then_load_in_st(ir_data_dir, small_ir, tmp_path):
    out = tmp_path / "model"
    result = run_train("--train", str(ir_data_dir / "train.json"), "--eval", str(small_ir), "--max-steps", "3",
                       "--batch-size", "8", "--matryoshka-dims", "384,128", "--query-prompt", "query: ",
                       "--output", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "negatives per query: 7" in result.stdout and "cosine_map@100" in result.stdout
    texts = ["What rights do people have?", "Automated systems must be safe.", ""]
    st = SentenceTransformer(str(out), device="cpu")
    ours = embedder.load(str(out), device="cpu")
    assert np.abs(st.encode(texts) - ours.encode(texts)).max() <= 1e-5
    assert np.abs(st.encode_query(texts) - ours.encode(texts, prompt="query: ")).max() <= 1e-5
    card = (out / "README.md").read_text()
    assert "SentenceTransformer(" in card and "MatryoshkaLoss" in card and "cosine_map@100" in card
    assert f"`{small_ir.name}` (40 queries" in card and "`train.json` (" in card  # the data sets, by file name
    assert str(tmp_path) not in card and str(ir_data_dir) not in card and "`output`" not in card  # no local path
    log_table = card.split("### Training Logs")[1].split("###")[0]
    header, _, *rows = [line for line in log_table.splitlines() if line.startswith("|")]
    assert "Training Loss" in header
    loss_column = header.split("|").index(next(c for c in header.split("|") if "Training Loss" in c))
    logged_losses = [float(r.split("|")[loss_column]) for r in rows if r.split("|")[loss_column].strip() != "-"]
    assert logged_losses and all(0 < value < 10 for value in logged_losses)  # the loss column is filled
    log = [json.loads(line) for line in (out / "training_log.jsonl").read_text().splitlines()]
    assert log[0]["step"] == 0 and "cosine_map@100" in log[0] and any("loss" in row for row in log)
    assert json.loads((out / "train_config.json").read_text())["matryoshka_dims"] == [384, 128]
    check_card_facts(card, out, ir_data_dir, small_ir)
    # one clock: the console's total is its steps plus its evaluation (each rounded to a second), and the card's
    total, steps, evaluation = map(int, re.search(r"trained 3 steps in (\d+) s \(.* in (\d+) s of steps, "
                                                  r"evaluation (\d+) s", result.stdout).groups())
    assert abs(total - (steps + evaluation)) <= 1
    assert f"**Training wall time:** {total} s (of which evaluation {evaluation} s)" in card


def check_card_facts(card, out, ir_data_dir, small_ir):
    """The card's run facts against independent values: the widget from the eval file, the model-index against ST's
    evaluator on the saved model, the token statistics from transformers' tokenizer, the pairs from steps x batch."""
    import yaml
    from sentence_transformers.evaluation import InformationRetrievalEvaluator
    from transformers import AutoTokenizer

    front = yaml.safe_load(card[4:].split("\n---\n", 1)[0])
    ir = json.loads(small_ir.read_text())
    first = next(iter(ir["questions"]))
    assert front["widget"][0]["source_sentence"] == ir["questions"][first]
    assert front["widget"][0]["sentences"][0] == ir["corpus"][sorted(ir["relevant_contexts"][first])[0]]
    results = {r["dataset"]["name"]: {m["type"]: m["value"] for m in r["metrics"]}
               for r in front["model-index"][0]["results"]}
    assert set(results) == {"small_val", "small_val dim 128", "general_stdlib_test"}
    st_metrics = InformationRetrievalEvaluator(ir["questions"], ir["corpus"], ir["relevant_contexts"])(
        SentenceTransformer(str(out), device="cpu"))
    # the card's metrics were scored under the run's autocast (bf16 on a CPU with native bf16), ST's in fp32
    assert abs(results["small_val"]["cosine_map@100"] - st_metrics["cosine_map@100"]) <= 0.03
    assert "**Verdict:** " in card and "on validation (cosine_map@100" in card
    assert "- **Throughput:** " in card and "(24 pairs in 3 steps)" in card and "- **Device:** CPU: " in card
    non_default = card.split("#### Non-Default Hyperparameters")[1].split("####")[0]
    assert "- `batch_size`: 8" in non_default and "- `max_steps`: 3" in non_default and "`lr`" not in non_default
    train = json.loads((ir_data_dir / "train.json").read_text())  # one pair per relevant passage, in file order
    anchors = [text for qid, text in train["questions"].items() for _ in train["relevant_contexts"][qid]][:1000]
    lengths = [len(ids) for ids in AutoTokenizer.from_pretrained(str(out))(anchors, truncation=True,
                                                                          max_length=256)["input_ids"]]
    assert f"<li>min: {min(lengths)} tokens</li><li>mean: {sum(lengths) / len(lengths):.2f} tokens</li>" \
           f"<li>max: {max(lengths)} tokens</li>" in card


@pytest.mark.parametrize("args,fragment", [
    (["--batch-size", "0"], "--batch-size 0"),
    (["--train", "missing.csv"], "no such file"),
    (["--select-metric", "cosine_map@1000"], "--select-metric"),
    (["--matryoshka-dims", "512"], "larger than the model"),
    (["--precision", "fp16", "--device", "cpu"], "fp16 needs a CUDA GPU"),
    (["--resume"], "no checkpoint"),
])
def test_user_errors_exit_2_and_write_nothing(args, fragment, tmp_path, small_ir):
    result = run_train("--eval", str(small_ir), "--output", str(tmp_path / "out"), "--max-steps", "1", *args,
                       cwd=tmp_path)
    assert result.returncode == 2, (result.stdout[-500:], result.stderr[-1500:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.checkpoints").exists()


def test_refuses_to_replace_a_model_without_overwrite(tmp_path, minilm_folder):
    embedder.load(str(minilm_folder), device="cpu").save(tmp_path / "out")
    before = sorted(p.name for p in (tmp_path / "out").iterdir())
    result = run_train("--output", str(tmp_path / "out"), "--max-steps", "1", cwd=tmp_path)
    assert result.returncode == 2 and "--overwrite" in result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == before


def test_killed_run_resumes_to_the_same_weights(ir_data_dir, tmp_path):
    common = ["--train", str(ir_data_dir / "train.json"), "--eval", "none", "--batch-size", "8", "--max-steps", "8",
              "--save-steps", "2", "--matryoshka-dims", "none", "--keep-last"]
    straight = run_train(*common, "--output", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr[-1500:]

    process = run_train(*common, "--output", str(tmp_path / "resumed"), wait=False)
    first = tmp_path / "resumed.checkpoints" / "step-2" / "trainer_state.json"
    deadline = time.time() + 600
    while not first.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert process.poll() is None, f"the run ended before its first checkpoint: {process.communicate()[1][-1500:]}"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL and not (tmp_path / "resumed").exists()
    again = run_train(*common, "--output", str(tmp_path / "resumed"), "--resume")
    assert again.returncode == 0, again.stderr[-1500:]
    assert "resumed from" in again.stdout
    a = load_file(str(tmp_path / "straight" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "model.safetensors"))
    assert set(a) == set(b)
    assert max((a[k].float() - b[k].float()).abs().max().item() for k in a) <= 1e-6


def test_epochs_steps_and_log_in_process(tiny_bert_folder, tmp_path):
    from embedder.train.config import TrainConfig
    from embedder.train.run import train
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"anchor": f"question {i}", "positive": f"passage about {i}"}) + "\n"
                             for i in range(20)))
    ir = tmp_path / "ir.json"
    ir.write_text(json.dumps({"questions": {f"q{i}": f"question {i}" for i in range(6)},
                              "corpus": {f"p{i}": f"passage about {i}" for i in range(6)},
                              "relevant_contexts": {f"q{i}": [f"p{i}"] for i in range(6)}}))
    config = TrainConfig(base=str(tiny_bert_folder), train=(str(pairs),), eval=(str(ir),), output=str(tmp_path / "m"),
                         epochs=2, batch_size=8, matryoshka_dims=None, eval_steps=None, logging_steps=1)
    result = train(config, echo=lambda *a, **k: None)
    log = [json.loads(line) for line in (tmp_path / "m" / "training_log.jsonl").read_text().splitlines()]
    losses = [row for row in log if "loss" in row]
    evals = [row for row in log if "cosine_map@100" in row]
    assert [row["step"] for row in losses] == [1, 2, 3, 4, 5, 6]  # ceil(20 / 8) = 3 steps per epoch, last kept
    assert [(row["step"], row["epoch"]) for row in evals] == [(0, 0.0), (3, 1.0), (6, 2.0)]
    assert set(result.metrics) == set(result.base_metrics)
    assert len([k for k in result.metrics if not k.startswith("general_")]) == 30  # + the forgetting check

    # --max-steps stopping mid-epoch: the last step is evaluated too, so the best-model choice can see it
    train(replace(config, output=str(tmp_path / "m2"), max_steps=4), echo=lambda *a, **k: None)
    log = [json.loads(line) for line in (tmp_path / "m2" / "training_log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log if "cosine_map@100" in row] == [0, 3, 4]
