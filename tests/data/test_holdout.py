"""The validation set held out by passage (embedder/data/holdout.py), checked against splits worked out by hand,
and what a run without --eval does by default (embedder/train/config.py)."""

import random

import pytest

from embedder.data.formats import PairDataset
from embedder.data.holdout import hold_out
from embedder.errors import UserError
from embedder.train.config import TrainConfig


def _pairs(per_passage: list[int], source="train.json") -> PairDataset:
    rows = [(f"q{p}-{i}", f"passage {p}") for p, n in enumerate(per_passage) for i in range(n)]
    return PairDataset(("anchor", "positive"), rows, source)


def test_passages_held_out_in_the_seeded_order_until_the_share_is_reached():
    data = _pairs([2, 2, 2, 2, 2, 2, 2, 2, 2, 2])  # 20 pairs over 10 passages
    order = [f"passage {p}" for p in range(10)]
    random.Random(7).shuffle(order)  # the order the split takes passages in, worked out independently
    [kept], held = hold_out([data], 0.25, seed=7, batch_size=4, min_questions=1)
    held_passages = set(order[:3])  # 2 + 2 < 0.25 * 20 = 5 <= 2 + 2 + 2
    assert {row[1] for row in kept.rows} == set(order[3:])
    assert len(kept.rows) == 14 and kept.source == "train.json"
    assert sorted(held.queries.values()) == sorted(f"q{p[8:]}-{i}" for p in held_passages for i in range(2))
    assert sorted(held.corpus.values()) == sorted(held_passages)
    for qid, text in held.queries.items():
        assert [held.corpus[pid] for pid in held.relevant[qid]] == [f"passage {text[1:].split('-')[0]}"]
    assert held.source == "validation held out from train.json"


def test_no_passage_is_both_trained_on_and_validated():
    data = _pairs([1, 5, 3, 2, 7, 1, 1, 4, 2, 2, 6, 1])
    for seed in range(5):
        [kept], held = hold_out([data], 0.1, seed=seed, batch_size=2, min_questions=1)
        validated = {held.corpus[pid] for pids in held.relevant.values() for pid in pids}
        assert not validated & {row[1] for row in kept.rows}
        assert len(held.queries) >= 0.1 * len(data.rows) and len(kept.rows) + len(held.queries) == len(data.rows)
        assert hold_out([data], 0.1, seed=seed, batch_size=2, min_questions=1)[1] == held  # the same split (resume)


def test_a_question_paired_with_several_held_out_passages_has_all_of_them_relevant():
    rows = [("what is x?", "passage a"), ("what is x?", "passage b"), ("other", "passage b"), ("third", "passage c"),
            ("fourth", "passage d")]
    for seed in range(20):
        [kept], held = hold_out([PairDataset(("anchor", "positive"), rows, "t")], 0.2, seed, batch_size=1, min_questions=1)
        for qid, text in held.queries.items():
            if text == "what is x?":
                expected = sorted({"passage a", "passage b"} & set(held.corpus.values()))
                assert sorted(held.corpus[p] for p in held.relevant[qid]) == expected


def test_nothing_held_out_when_the_rest_would_not_fill_a_batch_or_there_is_one_passage():
    assert hold_out([_pairs([2] * 10)], 0.1, seed=1, batch_size=19, min_questions=1)[1] is None  # 18 pairs would be left
    assert hold_out([_pairs([2] * 10)], 0.1, seed=1, batch_size=18, min_questions=1)[1] is not None
    [kept], held = hold_out([_pairs([30])], 0.1, seed=1, batch_size=4, min_questions=1)
    assert held is None and len(kept.rows) == 30


def test_nothing_held_out_below_fifty_questions():
    [kept], held = hold_out([_pairs([1] * 490)], 0.1, seed=1, batch_size=16)  # 490 pairs: 49 questions
    assert held is None and len(kept.rows) == 490
    [kept], held = hold_out([_pairs([1] * 500)], 0.1, seed=1, batch_size=16)  # 500 pairs: 50
    assert len(held.queries) == 50 and len(kept.rows) == 450


def test_several_training_files_each_give_their_share_to_one_validation_set():
    a, b = _pairs([2] * 10, "a.json"), PairDataset(("anchor", "positive"),
                                                   [(f"b{i}", f"other {i}") for i in range(10)], "/home/me/b.csv")
    [kept_a, kept_b], held = hold_out([a, b], 0.2, seed=3, batch_size=2, min_questions=1)
    assert len(kept_a.rows) == 16 and len(kept_b.rows) == 8 and len(held.queries) == 6
    assert len(held.corpus) == 4 and held.source == "validation held out from a.json, b.csv"  # no machine path


def test_a_run_on_the_users_pairs_without_eval_holds_out_a_tenth():
    assert TrainConfig(train=("mine.json",)).validation_split == 0.1
    assert TrainConfig(train=("mine.json",)).general_sets == ("stdlib:test",)  # the forgetting check runs too
    assert TrainConfig(train=("mine.json",), eval=("val.json",)).validation_split == 0.0
    assert TrainConfig(train=("mine.json",), eval=()).validation_split == 0.0  # --eval none: nothing evaluated
    assert TrainConfig(train=("mine.json",), eval=()).general_sets == ()
    assert TrainConfig(train=("stdlib:train",)).validation_split == 0.0  # it has its val split
    assert TrainConfig(train=("mine.json",), validation_split=0.0).general_sets == ()
    assert "validation_split" not in TrainConfig(train=("mine.json",)).non_defaults()
    assert TrainConfig(train=("mine.json",), validation_split=0.2).non_defaults()["validation_split"] == 0.2


@pytest.mark.parametrize("settings, flag", [
    ({"validation_split": 1.0}, "--validation-split 1.0: out of range"),
    ({"validation_split": -0.1}, "--validation-split -0.1: out of range"),
    ({"validation_split": 0.2, "eval": ("val.json",)}, "--validation-split 0.2 with --eval"),
])
def test_a_bad_validation_split_is_one_line_naming_the_flag(settings, flag):
    with pytest.raises(UserError) as err:
        TrainConfig(train=("mine.json",), **settings)
    assert str(err.value).startswith(flag) and "\n" not in str(err.value)


def test_a_question_asked_of_two_passages_is_held_out_with_both_or_neither():
    """'q-shared' asks of passages 0 and 5 (and 'q-link' joins 5 to 7): the three go out together or stay; no
    held-out question is a training anchor, for any seed."""
    rows = [(f"q{p}-{i}", f"passage {p}") for p in range(12) for i in range(3)]
    rows += [("q-shared", "passage 0"), ("q-shared", "passage 5"), ("q-link", "passage 5"), ("q-link", "passage 7")]
    data = PairDataset(("anchor", "positive"), rows, "train.json")
    together, times_held = {"passage 0", "passage 5", "passage 7"}, 0
    for seed in range(20):
        [kept], held = hold_out([data], 0.2, seed=seed, batch_size=2, min_questions=1)
        trained_anchors = {row[0] for row in kept.rows}
        assert not set(held.queries.values()) & trained_anchors
        held_passages = set(held.corpus.values())
        assert together <= held_passages or not together & held_passages
        times_held += together <= held_passages
    assert 0 < times_held < 20
