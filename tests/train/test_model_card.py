"""The model card: front matter is valid YAML whatever the base name and the texts hold (checked with a YAML parser)
and carries widget examples and a model-index with the final metrics, grouped by eval set and dimension as ST's
model-index lists one result per evaluator; the verdict, the non-default settings and the widget examples follow
hand-made cases; a card that cannot be rendered falls back to a minimal one with a warning that names the error."""

import pytest
import yaml

import embedder
from embedder.data.formats import IRDataset
from embedder.train import model_card
from embedder.train.config import TrainConfig
from embedder.train.forgetting import verdict
from embedder.train.model_card import widget_examples

ODD_NAMES = ["/models/my #1 model", "/data/run: final", "it's \"quoted\"", "tab\there", "ünïcode/名前"]


def _facts(base_name, **overrides):
    args = dict(base_name=base_name, settings={"lr": 5e-5}, dataset_sizes={"train.json": 10},
                columns=("anchor", "positive"), loss_info={"loss": "MultipleNegativesRankingLoss", "scale": 20.0},
                base_metrics={"cosine_map@100": 0.5}, final_metrics={"cosine_map@100": 0.6},
                log_rows=[{"step": 0, "epoch": 0.0, "cosine_map@100": 0.5}, {"step": 10, "epoch": 1.0, "loss": 1.25}],
                select_metric="cosine_map@100", versions={"embedder": "0"})
    args.update(overrides)
    return model_card.CardFacts(**args)


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card[4:].split("\n---\n", 1)[0])


@pytest.mark.parametrize("name", ODD_NAMES)
def test_front_matter_parses_for_odd_base_names(name, tiny_bert_folder):
    card = model_card.render(embedder.load(str(tiny_bert_folder), device="cpu"), _facts(name))
    front = front_matter(card)
    assert front["base_model"] == name and front["metrics"] == ["cosine_map@100"]
    assert front["model-index"][0]["name"] == f"SentenceTransformer based on {name}"


def test_widget_and_model_index_in_the_front_matter(tiny_bert_folder):
    odd = 'a "quoted" line: with #hash\n--- and a dash line'
    final = {"cosine_map@100": 0.61, "dim_64_cosine_map@100": 0.55, "general_stdlib_test_cosine_map@100": 0.7}
    facts = _facts("base", final_metrics=final, metric_sets={"val": "", "general_stdlib_test": "general_stdlib_test_"},
                   widget=[{"source_sentence": odd, "sentences": ["p1", odd]}])
    front = front_matter(model_card.render(embedder.load(str(tiny_bert_folder), device="cpu"), facts))
    assert front["widget"] == [{"source_sentence": odd, "sentences": ["p1", odd]}]
    results = {r["dataset"]["name"]: {m["type"]: m["value"] for m in r["metrics"]}
               for r in front["model-index"][0]["results"]}
    assert results == {"val": {"cosine_map@100": 0.61}, "val dim 64": {"cosine_map@100": 0.55},
                       "general_stdlib_test": {"cosine_map@100": 0.7}}
    assert front["metrics"] == ["cosine_map@100"]


def test_a_failing_card_warns_and_falls_back(tiny_bert_folder, capsys):
    card = model_card.render(embedder.load(str(tiny_bert_folder), device="cpu"), _facts("base", dataset_sizes=None))
    assert card.startswith("# Fine-tuned base") and "could not be written" in card
    assert "warning: the model card could not be rendered (AttributeError" in capsys.readouterr().err


def test_verdict_words_follow_the_margins():
    base = {"m": 0.50, "general_x_cosine_map@100": 0.80}
    assert verdict(base, {"m": 0.52, "general_x_cosine_map@100": 0.79}, "m", ["general_x_cosine_map@100"], 0.02) == (
        "improved on validation (m 0.5000 -> 0.5200, +0.0200); general retrieval held "
        "(general_x 0.8000 -> 0.7900, -0.0100; allowed drop 0.02)")
    assert verdict(base, {"m": 0.504}, "m", [], 0.02).startswith("marginal on validation")
    assert verdict(base, {"m": 0.49}, "m", [], 0.02).startswith("regressed on validation")
    assert "general retrieval REGRESSED (general_x 0.8000 -> 0.7700, -0.0300" in verdict(
        base, {"m": 0.6, "general_x_cosine_map@100": 0.77}, "m", ["general_x_cosine_map@100"], 0.02)


def test_non_default_settings():
    assert TrainConfig().non_defaults() == {}
    config = TrainConfig(base="all-MiniLM-L6-v2", batch_size=16, epochs=1, matryoshka_dims=(384, 128), lr=5e-5)
    assert config.non_defaults() == {"base": "all-MiniLM-L6-v2", "batch_size": 16, "epochs": 1,
                                     "matryoshka_dims": [384, 128]}
    assert TrainConfig(output="elsewhere").non_defaults() == {"output": "elsewhere"}


def test_widget_examples_pair_each_query_with_its_answer_and_two_others():
    ir = IRDataset(queries={"q1": "first?", "q2": "second?", "q3": "no answer?"},
                   corpus={"a": "A", "b": "B", "c": "C", "d": "D"},
                   relevant={"q1": {"c"}, "q2": {"b", "a"}, "q3": set()}, source="hand")
    assert widget_examples(ir) == [{"source_sentence": "first?", "sentences": ["C", "A", "B"]},
                                   {"source_sentence": "second?", "sentences": ["A", "C", "D"]}]


def test_a_card_names_local_data_by_file_name_and_leaves_out_the_output(tmp_path):
    """A card travels: local files and folders appear by name, never by the machine's path; the output folder is
    no hyperparameter. Specs that are not paths (the embedded data, hub ids, in-memory sets) stay as given."""
    train = tmp_path / "my docs" / "train.json"
    train.parent.mkdir()
    train.write_text("{}")
    settings = {"base": str(tmp_path / "models" / "mine"), "train": [str(train), "stdlib:train"],
                "eval": ["/elsewhere/val.json", "eval (in memory)"], "eval_general": None,
                "output": str(tmp_path / "out"), "lr": 5e-5}
    assert model_card.public_settings(settings) == {"base": "mine", "train": ["train.json", "stdlib:train"],
                                                   "eval": ["val.json", "eval (in memory)"], "eval_general": None,
                                                   "lr": 5e-5}
    assert model_card.shown_name("sentence-transformers/all-MiniLM-L6-v2") == "sentence-transformers/all-MiniLM-L6-v2"
    assert model_card.shown_name("./data/train.csv") == "train.csv"


def test_a_run_without_evaluation_has_no_empty_metrics_section(tiny_bert_folder):
    card = model_card.render(embedder.load(str(tiny_bert_folder), device="cpu"),
                             _facts("base", base_metrics={}, final_metrics={}, log_rows=[{"step": 10, "loss": 1.0}]))
    assert "## Evaluation" not in card and "### Metrics" not in card and "model-index" not in front_matter(card)
    assert "## Training Details" in card and "could not be written" not in card
    with_metrics = model_card.render(embedder.load(str(tiny_bert_folder), device="cpu"), _facts("base"))
    assert "### Metrics" in with_metrics  # the section is there when there is something in it
