"""The model card's front matter is valid YAML whatever the base name holds (checked with a YAML parser), and a card
that cannot be rendered falls back to a minimal one with a warning that names the error."""

import pytest
import yaml

import embedder
from embedder import model_card

ODD_NAMES = ["/models/my #1 model", "/data/run: final", "it's \"quoted\"", "tab\there", "ünïcode/名前"]


def _render(model, base_name, **overrides):
    args = dict(base_name=base_name, dataset_sizes={"train.json": 10}, columns=("anchor", "positive"),
                loss_info={"loss": "MultipleNegativesRankingLoss", "scale": 20.0},
                base_metrics={"cosine_map@100": 0.5}, final_metrics={"cosine_map@100": 0.6},
                log_rows=[{"step": 0, "epoch": 0.0, "cosine_map@100": 0.5}, {"step": 10, "epoch": 1.0, "loss": 1.25}],
                select_metric="cosine_map@100", versions={"embedder": "0"})
    args.update(overrides)
    return model_card.render(model, {"lr": 5e-5}, **args)


@pytest.mark.parametrize("name", ODD_NAMES)
def test_front_matter_parses_for_odd_base_names(name, tiny_bert_folder):
    card = _render(embedder.load(str(tiny_bert_folder), device="cpu"), name)
    front = yaml.safe_load(card.split("---")[1])
    assert front["base_model"] == name and front["metrics"] == ["cosine_map@100"]


def test_a_failing_card_warns_and_falls_back(tiny_bert_folder, capsys):
    card = _render(embedder.load(str(tiny_bert_folder), device="cpu"), "base", dataset_sizes=None)
    assert card.startswith("# Fine-tuned base") and "could not be written" in card
    assert "warning: the model card could not be rendered (AttributeError" in capsys.readouterr().err
