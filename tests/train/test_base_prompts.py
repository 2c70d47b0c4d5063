"""A base model's saved prompts (e5's "query: "/"passage: ", an instruction) are used in training and evaluation by
default, as ST's encode_query/encode_document will apply them after training; the start-up report says so;
`--query-prompt ''` turns them off; every other named prompt of the base is kept in the saved model."""

import json

import numpy as np
import pytest

import embedder

PROMPTS = {"query": "query: ", "passage": "passage: ", "Clustering": "Identify the topic: "}


@pytest.fixture(scope="module")
def prompted_base(tmp_path_factory, minilm_folder):
    folder = tmp_path_factory.mktemp("e5_like") / "base"
    model = embedder.load(str(minilm_folder), device="cpu")
    model.prompts = dict(PROMPTS)
    model.save(folder)
    return folder


def train(base, output, **flags):
    lines = []
    pairs = [(f"What is item {i}?", f"Item {i} is the {i}th thing in the list.") for i in range(16)]
    result = embedder.fit(base=str(base), train=pairs, eval=None, validation_split=0.0, max_steps=2, batch_size=8,
                          matryoshka_dims=None, output=str(output), echo=lambda *a, **k: lines.append(" ".join(a)),
                          **flags)
    saved = json.loads((output / "config_sentence_transformers.json").read_text())["prompts"]
    return result.model, saved, next((line for line in lines if line.startswith("prompts:")), None)


def test_the_base_prompts_train_by_default_and_are_kept(prompted_base, tmp_path):
    default, saved, line = train(prompted_base, tmp_path / "default")
    assert line == "prompts: query 'query: ', passage 'passage: ' (the base model's (config_sentence_transformers" \
                   ".json); --query-prompt '' --passage-prompt '' turn them off)"
    assert saved == PROMPTS
    given, _, _ = train(prompted_base, tmp_path / "given", query_prompt="query: ", passage_prompt="passage: ")
    texts = ["What is item 3?", "Item 3 is the 3th thing in the list."]
    assert np.abs(default.encode(texts) - given.encode(texts)).max() <= 1e-6  # the same training: the prompts were used
    off, saved_off, line_off = train(prompted_base, tmp_path / "off", query_prompt="", passage_prompt="")
    assert np.abs(off.encode(texts) - default.encode(texts)).max() > 1e-4
    assert saved_off == {"Clustering": PROMPTS["Clustering"]}  # encode_query adds nothing training never saw
    assert line_off == "prompts: query '', passage '' (given; the base model's are query 'query: ', passage 'passage: ')"


def test_other_flags_replace_the_base_prompts_and_keep_the_other_names(prompted_base, tmp_path):
    _, saved, line = train(prompted_base, tmp_path / "mine", query_prompt="Represent the question: ")
    assert saved == {**PROMPTS, "query": "Represent the question: "}
    assert "given; the base model's are query 'query: '" in line
