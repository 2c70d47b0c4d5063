"""Security: nothing in a model folder can run code or reach outside the folder. Each case is a subprocess through a
real entry point (embedder.load, train.py, evaluate.py, embedder.mine) and must end with one line and exit 2,
with no marker file written by the folder's code and nothing else written (tests/battery.py)."""

import json
import shutil

from battery import run_cases

PAIRS = [{"anchor": f"question {i}", "positive": f"passage {i} " * (1 + i % 4)} for i in range(32)]
IR = {"questions": {"q1": "What is A?", "q2": "What is B?"}, "corpus": {"p1": "A is first.", "p2": "B is second."},
      "relevant_contexts": {"q1": ["p1"], "q2": ["p2"]}}
LOAD = ("import sys, embedder\ntry:\n    embedder.load(sys.argv[1])\nexcept embedder.UserError as err:\n"
        "    print(f'error: {err}', file=sys.stderr)\n    sys.exit(2)")


def _entry_points(model, work):
    """argv for each product entry point that loads `model`."""
    return {
        "embedder.load": ["-c", LOAD, str(model)],
        "train.py": ["train.py", "--base", str(model), "--train", str(work.parent / "pairs.jsonl"), "--eval", "none",
                     "--max-steps", "1", "--batch-size", "8", "--output", str(work / f"out-{model.name}")],
        "evaluate.py": ["evaluate.py", "--model", str(model), "--data", str(work.parent / "ir.json")],
        "embedder.mine": ["-m", "embedder.mine", "--model", str(model), "--data", str(work.parent / "ir.json"),
                          "--out", str(work / f"mined-{model.name}.jsonl")],
    }


def _setup(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in PAIRS))
    (tmp_path / "ir.json").write_text(json.dumps(IR))
    return work


def _code_folder(tmp_path, tiny_bert_folder, name, marker, edit):
    """A copy of the tiny model whose evil.py writes `marker` when imported; edit(folder) points a config at it."""
    folder = tmp_path / name
    shutil.copytree(tiny_bert_folder, folder)
    (folder / "evil.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('code from the model folder ran')\n"
        "from transformers import BertConfig, BertModel, BertTokenizerFast\n"
        "class EvilConfig(BertConfig):\n    model_type = 'evil-bert'\n"
        "class EvilModel(BertModel):\n    config_class = EvilConfig\n"
        "class EvilTokenizer(BertTokenizerFast):\n    pass\n")
    edit(folder)
    return folder


def _edit_json(path, **changes):
    value = json.loads(path.read_text())
    value.update(changes)
    path.write_text(json.dumps(value))


def test_custom_code_in_a_model_folder_never_runs(tmp_path, tiny_bert_folder):
    work = _setup(tmp_path)
    markers, cases = [], []
    folders = {
        "tokenizer": lambda f: _edit_json(f / "tokenizer_config.json",
                                          auto_map={"AutoTokenizer": ["evil.EvilTokenizer", "evil.EvilTokenizer"]}),
        "config": lambda f: _edit_json(f / "config.json", model_type="evil-bert",
                                       auto_map={"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"}),
        "config-claiming-bert": lambda f: _edit_json(f / "config.json", auto_map={"AutoModel": "evil.EvilModel"}),
    }
    for kind, edit in folders.items():
        marker = tmp_path / f"marker-{kind}"
        markers.append(marker)
        folder = _code_folder(tmp_path, tiny_bert_folder, f"custom-code-{kind}", marker, edit)
        for entry, argv in _entry_points(folder, work).items():
            cases.append((f"{kind} via {entry}", argv, "never runs code from model folders"))
    run_cases(cases, work, markers=markers)


def test_paths_in_a_model_folder_stay_inside_it(tmp_path, tiny_bert_folder):
    """Each folder refers to a complete, valid model outside itself: only the check stops the load."""
    work = _setup(tmp_path)
    outside = tmp_path / "outside"
    shutil.copytree(tiny_bert_folder, outside)
    cases = []

    def modules(path_of_transformer, path_of_pooling="1_Pooling"):
        def edit(folder):
            (folder / "modules.json").write_text(json.dumps([
                {"idx": 0, "name": "0", "path": path_of_transformer, "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": path_of_pooling, "type": "sentence_transformers.models.Pooling"}]))
        return edit

    def shards(name):
        def edit(folder):
            from safetensors import safe_open
            with safe_open(str(outside / "model.safetensors"), "pt") as f:
                keys = list(f.keys())
            (folder / "model.safetensors").unlink()
            (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {k: name for k in keys}}))
        return edit

    def tokenizer_files(**paths):
        def edit(folder):
            (folder / "tokenizer.json").unlink()
            (folder / "vocab.txt").unlink()
            config = json.loads((folder / "tokenizer_config.json").read_text())
            (folder / "tokenizer_config.json").write_text(json.dumps({**config, **paths}))
        return edit

    edits = {
        "modules-dotdot": modules("../outside"),
        "modules-absolute": modules(str(outside)),
        "pooling-dotdot": modules("", "../outside/1_Pooling"),
        "shard-dotdot": shards("../outside/model.safetensors"),
        "shard-absolute": shards(str(outside / "model.safetensors")),
        "tokenizer-file-absolute": tokenizer_files(tokenizer_file=str(outside / "tokenizer.json")),
        "vocab-file-dotdot": tokenizer_files(vocab_file="../outside/vocab.txt"),
    }
    for kind, edit in edits.items():
        folder = tmp_path / f"escape-{kind}"
        shutil.copytree(tiny_bert_folder, folder)
        edit(folder)
        for entry, argv in _entry_points(folder, work).items():
            cases.append((f"{kind} via {entry}", argv, "points outside the model folder"))
    run_cases(cases, work)
