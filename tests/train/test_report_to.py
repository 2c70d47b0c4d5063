"""`--report-to tensorboard` and `--report-to trackio` (embedder/train/report_to.py): the events, read back with TensorBoard's own reader, hold
the loss, learning rate, gradient norm and skipped steps at the logging steps and every evaluation metric (per
Matryoshka dim) at the steps training_log.jsonl has them, with the same values; they live under the model folder's
runs/, which ST's loader leaves alone."""

import json

import numpy as np
from sentence_transformers import SentenceTransformer
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import embedder


def test_tensorboard_events_hold_the_log(tmp_path, ir_data_dir):
    output = tmp_path / "model"
    val = json.loads((ir_data_dir / "val.json").read_text())
    keep = list(val["questions"])[:30]
    small = {"questions": {q: val["questions"][q] for q in keep}, "corpus": val["corpus"],
             "relevant_contexts": {q: val["relevant_contexts"][q] for q in keep}}
    result = embedder.fit(base="all-MiniLM-L6-v2", train=str(ir_data_dir / "train.json"), eval=small,
                          eval_general=(), max_steps=12, eval_steps=6, batch_size=8,
                          matryoshka_dims=(384, 128), merge="off", report_to="tensorboard", output=str(output))
    [run] = list((output / "runs").iterdir())
    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    log = [json.loads(line) for line in (output / "training_log.jsonl").read_text().splitlines()]
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/learning_rate", "train/grad_norm", "train/skipped_steps",
            "eval/cosine_map@100", "eval/dim_128_cosine_map@100"} <= tags
    for key, tag in (("loss", "train/loss"), ("grad_norm", "train/grad_norm"), ("cosine_map@100", "eval/cosine_map@100"),
                     ("dim_128_cosine_map@100", "eval/dim_128_cosine_map@100")):
        logged = [(row["step"], row[key]) for row in log if key in row]
        written = [(e.step, e.value) for e in events.Scalars(tag)]
        assert [s for s, _ in written] == [s for s, _ in logged] and len(logged) >= 2, key
        assert np.allclose([v for _, v in written], [v for _, v in logged], rtol=1e-6), key
    assert all(row["grad_norm"] > 0 and row["skipped_steps"] == 0 for row in log if "loss" in row)
    texts = ["What rights do people have?"]
    assert np.abs(SentenceTransformer(str(output), device="cpu").encode(texts) - result.model.encode(texts)).max() <= 1e-5


def test_trackio_logs_hold_the_log(tmp_path, tiny_bert_folder, ir_data_dir):
    """`train.py --report-to trackio`: the logs, read back with trackio's own storage reader, hold the training and
    evaluation rows of training_log.jsonl at their steps; trackio's banners stay off embedder's console."""
    from battery import run
    val = json.loads((ir_data_dir / "val.json").read_text())
    keep = list(val["questions"])[:20]
    (tmp_path / "ir.json").write_text(json.dumps({"questions": {q: val["questions"][q] for q in keep},
                                                  "corpus": val["corpus"],
                                                  "relevant_contexts": {q: val["relevant_contexts"][q] for q in keep}}))
    env = {"TRACKIO_DIR": str(tmp_path / "trackio")}
    done = run(["train.py", "--base", str(tiny_bert_folder), "--train", str(ir_data_dir / "train.json"), "--eval",
                str(tmp_path / "ir.json"), "--max-steps", "12", "--eval-steps", "6", "--batch-size", "8", "--merge",
                "off", "--report-to", "trackio", "--output", str(tmp_path / "model")], tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "trackio show --project 'model'" in done.stdout and "* Created new run" not in done.stdout
    [run_name] = [line.split("(run ")[1].rstrip(")") for line in done.stdout.splitlines() if line.startswith("trackio:")]
    read = run(["-c", "import json, sys; from trackio.sqlite_storage import SQLiteStorage; "
                      "print(json.dumps(SQLiteStorage.get_logs(sys.argv[1], sys.argv[2])))", "model", run_name],
               tmp_path, env=env)
    assert read.returncode == 0, read.stderr[-2000:]
    logs = json.loads(read.stdout.strip().splitlines()[-1])
    log = [json.loads(line) for line in (tmp_path / "model" / "training_log.jsonl").read_text().splitlines()]
    for key, name in (("loss", "train/loss"), ("grad_norm", "train/grad_norm"), ("cosine_map@100", "eval/cosine_map@100")):
        logged = [(row["step"], row[key]) for row in log if key in row]
        written = [(row["step"], row[name]) for row in logs if name in row]
        assert [s for s, _ in written] == [s for s, _ in logged] and len(logged) >= 2, key
        assert np.allclose([v for _, v in written], [v for _, v in logged], rtol=1e-6), key
