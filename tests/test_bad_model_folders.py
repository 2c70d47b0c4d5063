"""Malformed model folders and damaged or foreign checkpoints, tried through train.py and evaluate.py: each case
ends with one line naming the file and the fix, exit 2, no traceback, nothing written (tests/battery.py). A new run
beside an earlier run's checkpoints, without --resume or --overwrite, is refused the same way."""

import json
import pickle
import shutil

import torch
from battery import run, run_cases

PAIRS = [{"anchor": f"question {i}", "positive": f"passage {i} " * (1 + i % 4)} for i in range(32)]
IR = {"questions": {"q1": "What is A?", "q2": "What is B?"}, "corpus": {"p1": "A is first.", "p2": "B is second."},
      "relevant_contexts": {"q1": ["p1"], "q2": ["p2"]}}


def _data(tmp_path):
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in PAIRS))
    (tmp_path / "ir.json").write_text(json.dumps(IR))
    work = tmp_path / "work"
    work.mkdir()
    return work


def _set_json(name, value):
    def edit(folder):
        (folder / name).write_text(value if isinstance(value, str) else json.dumps(value))
    return edit


def _update_json(name, **changes):
    def edit(folder):
        value = json.loads((folder / name).read_text())
        value.update(changes)
        (folder / name).write_text(json.dumps(value))
    return edit


def _dense(config, tensors=None, order=("Transformer", "Pooling", "Dense")):
    """Give the folder a Dense module (2_Dense/) with `config` and `tensors` (default: weights that fit it), listed
    in modules.json in `order`."""
    def edit(folder):
        paths = {"Transformer": "", "Pooling": "1_Pooling", "Dense": "2_Dense"}
        (folder / "modules.json").write_text(json.dumps([
            {"idx": i, "name": str(i), "path": paths[kind], "type": f"sentence_transformers.models.{kind}"}
            for i, kind in enumerate(order)]))
        (folder / "2_Dense").mkdir()
        (folder / "2_Dense" / "config.json").write_text(json.dumps(config))
        weights = tensors if tensors is not None else {"linear.weight": torch.zeros(8, 32), "linear.bias": torch.zeros(8)}
        if weights:
            __import__("safetensors.torch").torch.save_file(weights, str(folder / "2_Dense" / "model.safetensors"))
    return edit


DENSE = {"in_features": 32, "out_features": 8, "bias": True, "activation_function": "torch.nn.modules.activation.Tanh"}
FOLDER_CASES = {  # name -> (edit, fragment of the one-line error)
    "modules-not-json": (_set_json("modules.json", "[{"), "modules.json is not readable JSON"),
    "modules-an-object": (_set_json("modules.json", {"0": "Transformer"}), "modules.json holds a JSON dict"),
    "modules-strings": (_set_json("modules.json", ["Transformer", "Pooling"]), "modules.json must list objects"),
    "modules-no-pooling": (_set_json("modules.json", [{"type": "sentence_transformers.models.Transformer", "path": ""}]),
                           "Transformer -> Pooling"),
    "config-a-list": (_set_json("config.json", [1, 2]), "config.json holds a JSON list"),
    "config-missing-key": (lambda f: _set_json("config.json", {k: v for k, v in json.loads(
        (f / "config.json").read_text()).items() if k != "hidden_size"})(f), "hidden_size"),
    "config-absurd-width": (_update_json("config.json", hidden_size=10**12), "hidden_size"),
    "config-absurd-depth": (_update_json("config.json", num_hidden_layers=10**9), "num_hidden_layers"),
    "config-zero-heads": (_update_json("config.json", num_attention_heads=0), "num_attention_heads"),
    "config-string-size": (_update_json("config.json", intermediate_size="64"), "intermediate_size"),
    "config-wider-than-weights": (_update_json("config.json", hidden_size=64, num_attention_heads=4),
                                  "do not match config.json"),
    "config-unknown-type": (_update_json("config.json", model_type="no-such-architecture"), "config.json"),
    "tokenizer-garbage": (lambda f: (f / "tokenizer.json").write_bytes(b"\x00\xff" * 100), "tokenizer"),
    "tokenizer-empty-object": (_set_json("tokenizer.json", {}), "tokenizer"),
    "pooling-a-list": (_set_json("1_Pooling/config.json", [1]), "config.json holds a JSON list"),
    "pooling-bad-mode": (_set_json("1_Pooling/config.json", {"pooling_mode": "median"}), "pooling"),
    "pooling-bad-width": (_set_json("1_Pooling/config.json", {"word_embedding_dimension": "wide"}), "pooling"),
    "sbert-length-text": (_set_json("sentence_bert_config.json", {"max_seq_length": "long"}), "max_seq_length"),
    "sbert-length-huge": (_set_json("sentence_bert_config.json", {"max_seq_length": 100000}), "max_seq_length"),
    "prompts-not-texts": (_set_json("config_sentence_transformers.json", {"prompts": {"query": 3}}), "prompts"),
    "dense-before-pooling": (_dense(DENSE, order=("Transformer", "Dense", "Pooling")), "Transformer -> Pooling"),
    "dense-foreign-activation": (_dense({**DENSE, "activation_function": "os.system"}), "activation_function"),
    "dense-wrong-width": (_dense({**DENSE, "in_features": 7}, {"linear.weight": torch.zeros(8, 7),
                                                               "linear.bias": torch.zeros(8)}), "in_features 7"),
    "dense-no-weights": (_dense(DENSE, {}), "holds no weights"),
    "dense-weights-of-another-shape": (_dense(DENSE, {"linear.weight": torch.zeros(4, 32)}), "do not match config.json"),
    "dense-on-tokens": (_dense({**DENSE, "module_input_name": "token_embeddings"}), "sentence embedding only"),
    "weights-integers": (lambda f: __import__("safetensors.torch").torch.save_file(
        {k: (v * 100).to(torch.int32) for k, v in __import__("safetensors.torch").torch.load_file(
            str(f / "model.safetensors")).items()}, str(f / "model.safetensors")), "dtype"),
}


def test_malformed_model_folders(tmp_path, tiny_bert_folder):
    work = _data(tmp_path)
    cases = []
    for name, (edit, fragment) in FOLDER_CASES.items():
        folder = tmp_path / name
        shutil.copytree(tiny_bert_folder, folder)
        edit(folder)
        cases.append((f"{name} via train.py", ["train.py", "--base", str(folder), "--train", str(tmp_path / "pairs.jsonl"),
                                                "--eval", "none", "--max-steps", "1", "--batch-size", "8",
                                                "--output", str(work / f"out-{name}")], fragment))
        cases.append((f"{name} via evaluate.py", ["evaluate.py", "--model", str(folder), "--data",
                                                   str(tmp_path / "ir.json")], fragment))
    run_cases(cases, work)


def _tamper(name):
    """name -> edit(checkpoint folder), fragment."""
    return {
        "truncated-weights": (lambda c: (c / "model.safetensors").write_bytes((c / "model.safetensors").read_bytes()[:500]),
                              "model.safetensors is damaged"),
        "trainer-state-not-json": (lambda c: (c / "trainer_state.json").write_text("{"), "trainer_state.json is damaged"),
        "trainer-state-no-step": (lambda c: (c / "trainer_state.json").write_text("{}"), "trainer_state.json"),
        "trainer-state-unknown-keys": (lambda c: (c / "trainer_state.json").write_text(json.dumps(
            {"step": 2, "epoch": 0, "batch_in_epoch": 2, "surprise": 1})), "trainer_state.json"),
        "rng-not-tensors": (lambda c: torch.save([{"torch": "not a tensor"}], c / "rng.pt"), "rng.pt"),
        "rng-malicious-pickle": (lambda c: (c / "rng.pt").write_bytes(pickle.dumps(Exploit())), "rng.pt is damaged"),
        "optimizer-truncated": (lambda c: (c / "optimizer.pt").write_bytes(b"PK\x03\x04"), "optimizer.pt is damaged"),
    }[name]


class Exploit:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_damaged_or_foreign_checkpoints(tmp_path, tiny_bert_folder):
    work = _data(tmp_path)
    base_args = ["--train", str(tmp_path / "pairs.jsonl"), "--eval", "none", "--batch-size", "8", "--max-steps", "3",
                 "--save-steps", "1"]
    first = run(["train.py", "--base", str(tiny_bert_folder), *base_args, "--output", str(tmp_path / "run")], tmp_path)
    assert first.returncode == 0, first.stderr[-1500:]
    other_width = tmp_path / "wider-model"
    shutil.copytree(tiny_bert_folder, other_width)
    from transformers import BertConfig, BertModel
    BertModel(BertConfig(vocab_size=30522, hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=64, max_position_embeddings=128)).save_pretrained(other_width)
    (other_width / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 48,
                                                                       "pooling_mode_mean_tokens": True}))
    same_shape = tmp_path / "same-shape-model"
    shutil.copytree(tiny_bert_folder, same_shape)

    cases = []
    names = ["truncated-weights", "trainer-state-not-json", "trainer-state-no-step", "trainer-state-unknown-keys",
             "rng-not-tensors", "rng-malicious-pickle", "optimizer-truncated"]
    for name in names:
        edit, fragment = _tamper(name)
        shutil.copytree(tmp_path / "run.checkpoints", work / f"{name}.checkpoints")
        edit(work / f"{name}.checkpoints" / "step-3")
        cases.append((name, ["train.py", "--base", str(tiny_bert_folder), *base_args, "--output", str(work / name),
                             "--resume"], fragment))
    for name, base, fragment in (("another-width", other_width, "weights of another model"),
                                 ("another-base", same_shape, "continues a run from base")):
        shutil.copytree(tmp_path / "run.checkpoints", work / f"{name}.checkpoints")
        cases.append((name, ["train.py", "--base", str(base), *base_args, "--output", str(work / name), "--resume"],
                      fragment))
    for name, flag, value in (("changed-batch", "--batch-size", "4"), ("changed-seed", "--seed", "7"),
                              ("changed-scale", "--scale", "30"), ("changed-lr", "--lr", "1e-4"),
                              ("changed-directions", "--directions", "query_to_doc,doc_to_query")):
        shutil.copytree(tmp_path / "run.checkpoints", work / f"{name}.checkpoints")
        args = [*base_args[:base_args.index(flag)], *base_args[base_args.index(flag) + 2:]] if flag in base_args \
            else base_args
        cases.append((name, ["train.py", "--base", str(tiny_bert_folder), *args, flag, value, "--output",
                             str(work / name), "--resume"], f"{flag} changed since"))
    shutil.copytree(tmp_path / "run.checkpoints", work / "earlier-run.checkpoints")  # a new run beside them
    cases.append(("checkpoints of an earlier run, no --resume", ["train.py", "--base", str(tiny_bert_folder), *base_args,
                                                                 "--output", str(work / "earlier-run")],
                  "holds checkpoints of an earlier run; pass --resume"))
    run_cases(cases, work)
