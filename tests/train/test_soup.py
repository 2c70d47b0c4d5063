"""The uniform weight average (embedder/train/soup.py) against values worked out by hand."""

import pytest
import torch

from embedder.errors import UserError
from embedder.train.averaging import uniform_average


def test_the_average_of_three_states_worked_by_hand():
    a = {"w": torch.tensor([1.0, 2.0]), "b": torch.tensor([0.5], dtype=torch.bfloat16)}
    b = {"w": torch.tensor([3.0, 6.0]), "b": torch.tensor([1.5], dtype=torch.bfloat16)}
    c = {"w": torch.tensor([5.0, 1.0]), "b": torch.tensor([4.0], dtype=torch.bfloat16)}
    soup = uniform_average([a, b, c])
    assert torch.equal(soup["w"], torch.tensor([3.0, 3.0]))  # (1+3+5)/3, (2+6+1)/3
    assert soup["b"].dtype == torch.bfloat16 and float(soup["b"]) == 2.0  # (0.5+1.5+4)/3
    assert uniform_average([a])["w"] is not a["w"] and torch.equal(uniform_average([a])["w"], a["w"])


def test_states_of_other_architectures_are_refused():
    with pytest.raises(UserError, match="member 1 are not one architecture"):
        uniform_average([{"w": torch.zeros(2)}, {"w": torch.zeros(3)}])
    with pytest.raises(UserError, match="'v'"):
        uniform_average([{"w": torch.zeros(2)}, {"v": torch.zeros(2)}])


PAIRS = [(f"what is item {i} about?", f"item {i} is about topic {i % 5} and number {i}") for i in range(48)]
IR = {"questions": {f"q{i}": f"what is item {i} about?" for i in range(12)},
      "corpus": {f"p{i}": f"item {i} is about topic {i % 5} and number {i}" for i in range(48)},
      "relevant_contexts": {f"q{i}": [f"p{i}"] for i in range(12)}}
SETTINGS = dict(epochs=2, batch_size=8, matryoshka_dims=None, eval_steps=2, lr=2e-4, merge="off", eval_general=(),
                echo=lambda *a, **k: None)


def test_a_soup_is_the_average_of_the_runs_its_seeds_make_alone(tiny_bert_folder, tmp_path):
    """--soup 3 at seed 5 saves the average of what three separate runs at seeds 5, 1005 and 2005 save (the same
    data and evaluation set): the members share the process, not their training; the card and train_config.json
    name the members."""
    import json

    from safetensors.torch import load_file

    import embedder
    soup = embedder.fit(base=str(tiny_bert_folder), train=PAIRS, eval=IR, soup=3, seed=5, output=str(tmp_path / "soup"),
                        **SETTINGS)
    alone = []
    for m, seed in enumerate((5, 1005, 2005)):
        folder = tmp_path / f"alone{m}"
        embedder.fit(base=str(tiny_bert_folder), train=PAIRS, eval=IR, seed=seed, output=str(folder),
                     **SETTINGS)
        alone.append((load_file(str(folder / "model.safetensors")), json.loads((folder / "training_log.jsonl")
                                                                               .read_text().splitlines()[-1])))
    saved = load_file(str(tmp_path / "soup" / "model.safetensors"))
    worst = max(float((saved[k].float() - sum(a[k].float() for a, _ in alone) / 3).abs().max()) for k in saved)
    assert worst <= 1e-6
    differ = max(float((alone[0][0][k].float() - alone[1][0][k].float()).abs().max()) for k in saved)
    assert differ > 1e-4  # the members are different models
    config = json.loads((tmp_path / "soup" / "train_config.json").read_text())
    assert [m["seed"] for m in config["soup_members"]] == [5, 1005, 2005] and config["soup"] == 3
    assert "#### Model soup" in (tmp_path / "soup" / "README.md").read_text()
    assert soup.metrics["cosine_map@100"] >= 0


def test_patience_stops_after_that_many_evaluations_without_a_better_score(tiny_bert_folder, tmp_path):
    """--patience 1 with an evaluation every step: the run stops at the first evaluation that does not beat the
    best so far once a trained step is the best (while the base model's score leads, it trains on), as its own
    log shows."""
    import json

    import embedder
    settings = {**SETTINGS, "eval_steps": 1, "epochs": 4, "lr": 1e-3}
    embedder.fit(base=str(tiny_bert_folder), train=PAIRS, eval=IR, seed=7, patience=1, output=str(tmp_path / "m"),
                 **settings)
    log = [json.loads(line) for line in (tmp_path / "m" / "training_log.jsonl").read_text().splitlines()]
    scores = [(row["step"], row["cosine_map@100"]) for row in log if "cosine_map@100" in row]
    best, best_step, stop_at = None, None, None
    for step, value in scores:
        if best_step and value <= best:
            stop_at = step
            break
        if best is None or value > best:
            best, best_step = value, step
    assert stop_at is not None and stop_at < 4 * 6, scores  # it did stop early, and at that evaluation
    assert scores[-1][0] == stop_at and max(row["step"] for row in log) == stop_at


def test_train_py_says_what_the_soup_is_and_did(tiny_bert_folder, tmp_path):
    """`train.py --soup 2 --patience 1`: the start-up report names the members' seeds, each member is announced,
    the end says the soup was saved with the steps of both members, as train_config.json records them."""
    import json

    from battery import run
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps({"anchor": a, "positive": p}) + "\n" for a, p in PAIRS))
    (tmp_path / "ir.json").write_text(json.dumps(IR))
    done = run(["train.py", "--base", str(tiny_bert_folder), "--train", str(tmp_path / "pairs.jsonl"), "--eval",
                str(tmp_path / "ir.json"), "--eval-general", "none", "--epochs", "2", "--batch-size", "8",
                "--eval-steps", "2", "--soup", "2", "--patience", "1", "--seed", "9", "--matryoshka-dims", "none",
                "--output", str(tmp_path / "m")], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    members = json.loads((tmp_path / "m" / "train_config.json").read_text())["soup_members"]
    assert [m["seed"] for m in members] == [9, 1009]
    assert "soup: 2 runs one after another (seeds 9, 1009)" in done.stdout and "soup member 2/2 (seed 1009)" in done.stdout
    assert f"trained {members[0]['steps']} + {members[1]['steps']} steps" in done.stdout
    assert "saved the soup of 2 members" in done.stdout


def test_members_keeping_the_base_are_left_out_and_patience_waits(tiny_bert_folder, tmp_path):
    """An evaluation set the base model already ranks perfectly (each question is its passage's own text, so map@100
    is 1.0 and no step can be strictly better): with --patience 1 every member still trains every step (patience
    counts only once a trained step is the best), every member keeps the base model (step 0), none enters the
    average, and the saved model is the base model's weights as `Embedder.save` writes them."""
    import json

    from safetensors.torch import load_file

    import embedder
    texts = [passage for _, passage in PAIRS[:8]]
    perfect = {"questions": {f"q{i}": t for i, t in enumerate(texts)},
               "corpus": {f"p{i}": t for i, t in enumerate(texts)},
               "relevant_contexts": {f"q{i}": [f"p{i}"] for i in range(len(texts))}}
    lines = []
    embedder.fit(base=str(tiny_bert_folder), train=PAIRS, eval=perfect, soup=2, seed=3, patience=1,
                 output=str(tmp_path / "soup"), **{**SETTINGS, "echo": lambda *a, **k: lines.extend(map(str, a))})
    log = [json.loads(line) for line in (tmp_path / "soup" / "training_log.jsonl").read_text().splitlines()]
    assert [row["cosine_map@100"] for row in log if row["step"] == 0][0] == 1.0
    members = json.loads((tmp_path / "soup" / "train_config.json").read_text())["soup_members"]
    assert [(m["step"], m["steps"]) for m in members] == [(0, 12), (0, 12)]  # 48 pairs / 8 x 2 epochs, no stop
    said = "\n".join(lines)
    assert "member 1 kept the base model" in said and "member 2 kept the base model" in said
    assert "the model is the base model" in said
    embedder.load(str(tiny_bert_folder), device="cpu").save(tmp_path / "base")
    saved = load_file(str(tmp_path / "soup" / "model.safetensors"))
    base = load_file(str(tmp_path / "base" / "model.safetensors"))
    assert set(saved) == set(base) and all(torch.equal(saved[k], base[k]) for k in base)
