"""Batch samplers: ST's plain random batches (ceil(n/B), last kept), the no-duplicates sampler (no text twice in a
batch, every row once per epoch, new batches each epoch, exact length) and round-robin over several data sets."""

import numpy as np
import pytest

from embedder.data import batching


def _aipolicy_like(n_passages=300):
    # two questions per passage, as in aipolicy: text ids (question, passage)
    return np.array([[q, 10_000 + q // 2] for q in range(2 * n_passages)])


def test_random_batches_like_st():
    batches = batching.random_batches(600, 16, seed=42, epoch=0)
    assert len(batches) == 38 and len(batches[-1]) == 600 - 37 * 16
    assert sorted(r for b in batches for r in b) == list(range(600))
    assert batches != batching.random_batches(600, 16, seed=42, epoch=1)
    assert batches == batching.random_batches(600, 16, seed=42, epoch=0)


def test_no_duplicate_batches():
    text_ids = _aipolicy_like()
    assert batching.duplicate_share(text_ids, 32) > 0.4  # random batches of 32 often repeat a passage
    seen_epochs = []
    for epoch in range(3):
        batches = batching.no_duplicate_batches(text_ids, 32, seed=42, epoch=epoch)
        assert sorted(r for b in batches for r in b) == list(range(600))  # every row once
        for batch in batches:
            cells = text_ids[batch].ravel()
            assert len(set(cells.tolist())) == len(cells)  # no text twice in a batch
        assert len(batches) == 19 and all(len(b) == 32 for b in batches[:-1])
        seen_epochs.append(batches)
    assert seen_epochs[0] != seen_epochs[1] != seen_epochs[2]


def test_round_robin_stops_with_the_shortest():
    a = batching.TokenizedPairs("a", ("anchor", "positive"), [[[1]] * 10, [[2]] * 10], np.arange(20).reshape(10, 2))
    b = batching.TokenizedPairs("b", ("anchor", "positive"), [[[1]] * 4, [[2]] * 4], np.arange(8).reshape(4, 2))
    plan = batching.epoch_batches([a, b], 2, "random", 42, 0)
    assert [i for i, _ in plan] == [0, 1, 0, 1]


def test_pad():
    features = batching.pad([[5, 6, 7], [8]], pad_id=0)
    assert features["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert features["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def _reference_no_duplicate_batches(text_ids, batch_size, seed, epoch):
    """The sampler's definition, written plainly (quadratic): each batch scans all remaining rows in permutation
    order and takes those sharing no text with it until full; the rest wait, in order, for the next batch."""
    remaining = batching._permutation(len(text_ids), seed, epoch)
    batches = []
    while remaining:
        batch, used, waiting = [], set(), []
        for row in remaining:
            texts = set(text_ids[row].tolist())
            if len(batch) < batch_size and not texts & used:
                batch.append(row)
                used |= texts
            else:
                waiting.append(row)
        batches.append(batch)
        remaining = waiting
    return batches


@pytest.mark.parametrize("rows, distinct, batch_size, seed", [(600, 300, 16, 42), (1000, 100, 20, 1),
                                                              (5000, 4500, 16, 2), (300, 12, 8, 42)])
def test_linear_sampler_draws_the_reference_batches(rows, distinct, batch_size, seed):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, distinct, size=(rows, 2))
    ids[:, 1] += distinct  # anchors and passages are different texts; both repeat
    for epoch in (0, 1):
        batches = batching.no_duplicate_batches(ids, batch_size, seed, epoch)
        assert batches == _reference_no_duplicate_batches(ids, batch_size, seed, epoch)
        assert sorted(r for b in batches for r in b) == list(range(rows))  # every row once per epoch
        assert all(len(set(ids[b].ravel().tolist())) == ids[b].size for b in batches)  # no text twice in a batch
    assert batching.no_duplicate_batches(ids, batch_size, seed, 0) != batching.no_duplicate_batches(ids, batch_size,
                                                                                                   seed, 1)
