"""Data loss: no output may overwrite an input. Each case points an output (--output with --overwrite, --json,
--per-query, mine's --out) at an input (--train, --eval, --base, --data, --model) — the same path, a folder that
holds it, a symlink or a hard link to it — and must end with one line, exit 2, every input byte-for-byte intact
and nothing written."""

import hashlib
import json
import os
import shutil

from battery import run_cases

PAIRS = [{"anchor": f"question {i}", "positive": f"passage {i} " * (1 + i % 4)} for i in range(32)]
IR = {"questions": {"q1": "What is A?", "q2": "What is B?"}, "corpus": {"p1": "A is first.", "p2": "B is second."},
      "relevant_contexts": {"q1": ["p1"], "q2": ["p2"]}}


def _digest(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def test_outputs_never_overwrite_inputs(tmp_path, tiny_bert_folder):
    work = tmp_path / "work"
    out = work / "out"  # an earlier model folder that now also holds the user's data
    shutil.copytree(tiny_bert_folder, out)
    (out / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in PAIRS))
    (out / "val.json").write_text(json.dumps(IR))
    data = work / "data"
    data.mkdir()
    ir = data / "ir.json"
    ir.write_text(json.dumps(IR))
    pairs = data / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in PAIRS))
    (data / "notes").mkdir()
    (data / "notes" / "train.json").write_text("my own notes, not a model")
    os.link(ir, data / "ir-hardlink.json")
    os.symlink(ir, data / "ir-symlink.json")
    (tmp_path / "m.checkpoints").mkdir()
    (tmp_path / "m.checkpoints" / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in PAIRS))
    model = work / "model"
    shutil.copytree(tiny_bert_folder, model)
    before = _digest(work)

    train = ["train.py", "--base", str(model), "--eval", "none", "--max-steps", "1", "--batch-size", "8",
             "--overwrite"]
    evaluate = ["evaluate.py", "--model", str(model)]
    mine = ["-m", "embedder.mine", "--model", str(model)]
    cases = [
        ("--train inside --output", [*train, "--train", str(out / "train.jsonl"), "--output", str(out)], "would overwrite --train"),
        ("--eval inside --output", [*[a if a != "none" else str(out / "val.json") for a in train], "--train", str(pairs),
                                    "--output", str(out)],
         "would overwrite --eval"),
        ("--output is --base", [*train, "--train", str(pairs), "--output", str(model)], "would overwrite --base"),
        ("--output holds --base", [*train, "--train", str(pairs), "--output", str(work)], "would overwrite"),
        ("--output is the data folder", [*train, "--train", str(pairs), "--output", str(data)], "would overwrite --train"),
        ("checkpoints would hold --train", [*train, "--train", str(tmp_path / "m.checkpoints" / "pairs.jsonl"),
                                            "--output", str(tmp_path / "m")], "would overwrite --train"),
        ("--json is --data", [*evaluate, "--data", str(ir), "--json", str(ir)], "would overwrite --data"),
        ("--per-query is --data", [*evaluate, "--data", str(ir), "--per-query", str(ir)], "would overwrite --data"),
        ("--json is a hard link of --data", [*evaluate, "--data", str(ir), "--json", str(data / "ir-hardlink.json")],
         "would overwrite --data"),
        ("--json is a symlink to --data", [*evaluate, "--data", str(ir), "--json", str(data / "ir-symlink.json")],
         "would overwrite --data"),
        ("--json is --per-query", [*evaluate, "--data", str(ir), "--json", str(work / "m.json"), "--per-query",
                                   str(work / "m.json")], "would overwrite --per-query"),
        ("--json inside --model", [*evaluate, "--data", str(ir), "--json", str(model / "config.json")],
         "would overwrite --model"),
        ("--overwrite on a folder of other files", [*train, "--train", str(pairs), "--output", str(data / "notes")],
         "only replaces a model folder"),
        ("data stdlib --out over existing files", ["-m", "embedder.data", "stdlib", "--out", str(data / "notes")],
         "already holds"),
        ("mine --out is --data", [*mine, "--data", str(ir), "--out", str(ir)], "would overwrite --data"),
        ("mine --out is a hard link of --data", [*mine, "--data", str(ir), "--out", str(data / "ir-hardlink.json")],
         "would overwrite --data"),
    ]
    run_cases(cases, work)
    assert _digest(work) == before
