"""The forgetting check (issue 15 item 1): general IR sets scored beside the domain's, never selecting the model,
with a warning past --max-general-drop."""

import pytest

import embedder
from embedder.train.config import TrainConfig
from embedder.train.forgetting import forgetting_check

PAIRS = [(f"what is item {i} about?", f"item {i} is about topic {i % 5}") for i in range(16)]
IR = {"questions": {f"q{i}": f"which item is number {i}?" for i in range(6)},
      "corpus": {f"p{i}": f"item {i} is about topic {i % 5}" for i in range(6)},
      "relevant_contexts": {f"q{i}": [f"p{i}"] for i in range(6)}}


def test_which_general_sets_run_by_default():
    assert TrainConfig(train=("mine.json",), eval=("val.json",)).general_sets == ("stdlib:test",)
    assert TrainConfig(train=("stdlib:train",), eval=("stdlib:val",)).general_sets == ()  # the same domain
    assert TrainConfig(train=("mine.json",), eval=()).general_sets == ()  # no evaluation asked for
    assert TrainConfig(train=("mine.json",), eval=("val.json",), eval_general=()).general_sets == ()
    assert TrainConfig(train=("mine.json",), eval=("v.json",), eval_general=("g.json",)).general_sets == ("g.json",)


def test_general_metrics_are_reported_and_never_select(tiny_bert_folder, tmp_path):
    lines = []
    result = embedder.fit(base=str(tiny_bert_folder), train=PAIRS, eval=IR, output=str(tmp_path / "m"), epochs=2,
                          batch_size=8, matryoshka_dims=None, echo=lambda *a, **k: lines.append(" ".join(map(str, a))))
    assert "general_stdlib_test_cosine_map@100" in result.metrics and result.config.select_metric == "cosine_map@100"
    assert any(line.startswith("forgetting check (cosine_map@100 since the base model): domain ") and
               "/ general stdlib_test " in line for line in lines)
    with pytest.raises(embedder.UserError, match="--select-metric 'general_stdlib_test_cosine_map@100' is not a"):
        embedder.fit(base=str(tiny_bert_folder), train=PAIRS, eval=IR, output=str(tmp_path / "n"), batch_size=8,
                     select_metric="general_stdlib_test_cosine_map@100", echo=lambda *a, **k: None)


def test_a_general_drop_past_the_limit_is_warned():
    base = {"cosine_map@100": 0.60, "general_g_cosine_map@100": 0.80}
    messages = []
    echo = lambda line, err=False: messages.append((err, line))  # noqa: E731
    forgetting_check(0.02, ["general_g_cosine_map@100"], base,
                     {"cosine_map@100": 0.70, "general_g_cosine_map@100": 0.79}, "cosine_map@100", echo)
    assert messages == [(False, "forgetting check (cosine_map@100 since the base model): domain +0.1000 / general g "
                                "-0.0100")]
    messages.clear()
    forgetting_check(0.02, ["general_g_cosine_map@100"], base,
                     {"cosine_map@100": 0.70, "general_g_cosine_map@100": 0.75}, "cosine_map@100", echo)
    assert messages[1] == (True, "WARNING: general retrieval fell by 0.0500 general_g_cosine_map@100 (0.8000 -> "
                                 "0.7500), more than --max-general-drop 0.02: the model may have forgotten what it "
                                 "knew; lower --lr or train fewer epochs")
