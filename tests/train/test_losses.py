"""Losses against sentence-transformers: MNRL value and gradient w.r.t. the embeddings (with and without hard
negatives), a 2x2 case worked by hand, the duplicate mask, and the whole-model loss (MNRL and Matryoshka) of one
batch in eval mode against ST's loss on the same model and batch."""

import math

import pytest
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.losses import MatryoshkaLoss, MultipleNegativesRankingLoss

import embedder
from embedder.train import losses


def _grads(fn, *tensors):
    leaves = [t.detach().clone().requires_grad_(True) for t in tensors]
    value = fn(*leaves)
    value.backward()
    return value.detach(), [leaf.grad for leaf in leaves]


@pytest.mark.parametrize("negative_columns", [0, 1, 3])
def test_mnrl_value_and_gradient_match_st(negative_columns):
    generator = torch.Generator().manual_seed(negative_columns)
    columns = [torch.randn(8, 32, generator=generator) for _ in range(2 + negative_columns)]
    st_loss = MultipleNegativesRankingLoss(model=None, scale=20.0)
    expected, expected_grads = _grads(lambda *e: st_loss.compute_loss_from_embeddings(list(e), None), *columns)
    got, got_grads = _grads(lambda a, *c: losses.mnrl_loss(a, torch.cat(c), 20.0), *columns)
    assert abs(got - expected) <= 1e-6
    for g, e in zip(got_grads, expected_grads):
        assert torch.allclose(g, e, atol=1e-6)


def test_mnrl_by_hand():
    # anchors a1 = (1, 0), a2 = (0, 1); positives p1 = (1, 0), p2 = (1, 1)/√2; scale 1
    # row 1 logits (1, 1/√2), label 0; row 2 logits (0, 1/√2), label 1
    anchors = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    positives = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    r = 1 / math.sqrt(2)
    row1 = math.log(math.exp(1) + math.exp(r)) - 1
    row2 = math.log(math.exp(0) + math.exp(r)) - r
    assert losses.mnrl_loss(anchors, positives, scale=1.0).item() == pytest.approx((row1 + row2) / 2, abs=1e-6)


def test_duplicate_mask_removes_false_negatives():
    # positives of rows 0 and 2 are the same text (id 7): each must not be the other's negative
    mask = losses.duplicate_mask(torch.tensor([7, 3, 7, 9]), 4)
    assert mask.tolist() == [[False, False, True, False], [False] * 4, [True, False, False, False], [False] * 4]
    anchors = torch.randn(4, 8)
    positives = torch.randn(4, 8)
    positives[2] = positives[0]
    masked = losses.mnrl_loss(anchors, positives, mask=mask)
    logits = 20 * torch.nn.functional.normalize(anchors, dim=1) @ torch.nn.functional.normalize(positives, dim=1).T
    logits[0, 2] = logits[2, 0] = -float("inf")
    expected = torch.nn.functional.cross_entropy(logits, torch.arange(4))
    assert torch.allclose(masked, expected)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # logits stay float32 under autocast
        assert torch.isfinite(losses.mnrl_loss(anchors.bfloat16(), positives.bfloat16(), mask=mask))


def test_matryoshka_dims_validation():
    assert losses.validate_dims([64, 256, 128], 256) == ([256, 128, 64], [1.0, 1.0, 1.0])
    assert losses.validate_dims([64, 256, 128], 256, [4, 1, 2]) == ([256, 128, 64], [1, 2, 4])  # weights follow dims
    with pytest.raises(ValueError, match="2 Matryoshka weights for 3 dims"):
        losses.validate_dims([64, 256, 128], 256, [1, 2])
    with pytest.raises(ValueError, match="larger than the model"):
        losses.validate_dims([512], 384)
    with pytest.raises(ValueError, match="positive"):
        losses.validate_dims([0], 384)


@pytest.mark.parametrize("dims,weights", [(None, None), ((384, 256, 128, 64), None),
                                          ((384, 256, 128, 64), (1.0, 0.5, 2.0, 4.0))])
def test_whole_model_loss_matches_st(minilm_folder, dims, weights):
    anchors = ["What rights do people have?", "How is data protected?", "Who audits the systems?", "a"]
    positives = ["People have rights.", "Data is encrypted at rest.", "Independent auditors do.", "b " * 50]
    st_model = SentenceTransformer(str(minilm_folder), device="cpu").eval()
    inner = MultipleNegativesRankingLoss(st_model)
    st_loss = MatryoshkaLoss(st_model, inner, list(dims), matryoshka_weights=list(weights) if weights else None) \
        if dims else inner
    features = [st_model.preprocess(anchors), st_model.preprocess(positives)]
    expected = st_loss(features, None).item()

    ours = embedder.load(str(minilm_folder), device="cpu").eval()
    a, p = ours(ours.tokenize(anchors)), ours(ours.tokenize(positives))
    got = (losses.matryoshka_loss(a, p, dims, weights) if dims else losses.mnrl_loss(a, p)).item()
    assert abs(got - expected) <= 1e-5


def test_false_negative_margin_of_infinity_is_mnrl_exactly():
    torch.manual_seed(0)
    anchors = torch.randn(6, 16, requires_grad=True)
    candidates = torch.randn(12, 16, requires_grad=True)
    plain = losses.matryoshka_loss(anchors, candidates, [16, 8, 4], scale=20.0)
    grads = torch.autograd.grad(plain, [anchors, candidates])
    masked = losses.matryoshka_loss(anchors, candidates, [16, 8, 4], scale=20.0, false_negative_margin=math.inf)
    assert torch.equal(plain, masked)
    assert all(torch.equal(a, b) for a, b in zip(grads, torch.autograd.grad(masked, [anchors, candidates])))


def test_false_negative_masking_by_hand():
    """a0 = (1, 0), a1 = (0, 1), a2 = (1, 1)/√2 against c0 = (0.8, 0.6), c1 = (0, 1), c2 = (1, 0), margin 0.1:
    a0's positive c0 has cos 0.8 and c2 has 1.0 > 0.9: dropped; a1's positive has cos 1: nothing dropped;
    a2's positive c2 has cos 0.7071 and c0 has 1.4/√2 = 0.98995 > 0.8071: dropped, c1 (0.7071) kept."""
    r = 1 / math.sqrt(2)
    anchors = torch.tensor([[1.0, 0.0], [0.0, 1.0], [r, r]])
    candidates = torch.tensor([[0.8, 0.6], [0.0, 1.0], [1.0, 0.0]])
    cosine = anchors @ candidates.T
    assert losses.false_negative_mask(cosine, 0, 0.1).tolist() == [[False, False, True], [False, False, False],
                                                                    [True, False, False]]
    expected = (math.log(math.exp(16) + math.exp(0)) - 16
                + math.log(math.exp(12) + math.exp(20) + math.exp(0)) - 20
                + math.log(2)) / 3  # row 2: c1 and c2 both at 20·0.7071
    loss = losses.mnrl_loss(anchors, candidates, 20.0, false_negative_margin=0.1)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # gathered candidates: this process's positives start at `offset`; the rule is the same, shifted
    shifted = torch.cat([torch.tensor([[0.0, -1.0]]), candidates])
    assert losses.false_negative_mask(anchors @ shifted.T, 1, 0.1).tolist() == \
        [[False, False, False, True], [False, False, False, False], [False, True, False, False]]
    assert losses.mnrl_loss(anchors, shifted, 20.0, offset=1, false_negative_margin=0.1).item() == pytest.approx(
        (math.log(math.exp(-20) + math.exp(16) + 1) - 16 + math.log(math.exp(-20) + math.exp(12) + math.exp(20) + 1)
         - 20 + math.log(math.exp(-14.142135623730951) + 2 * math.exp(14.142135623730951)) - 14.142135623730951) / 3,
        rel=1e-6)


@pytest.mark.parametrize("directions, partition_mode", [
    (("query_to_doc", "doc_to_query"), "per_direction"),  # the symmetric loss (ST's MultipleNegativesSymmetric…)
    (("query_to_doc", "doc_to_query"), "joint"),
    (("query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc"), "joint"),  # GTE's improved contrastive loss
    (("query_to_doc", "doc_to_doc"), "joint"),
])
@pytest.mark.parametrize("negative_columns", [0, 2])
def test_directions_match_st(directions, partition_mode, negative_columns):
    generator = torch.Generator().manual_seed(len(directions) + negative_columns)
    columns = [torch.randn(6, 16, generator=generator) for _ in range(2 + negative_columns)]
    st_loss = MultipleNegativesRankingLoss(model=None, scale=20.0, directions=directions,
                                           partition_mode=partition_mode)
    expected, expected_grads = _grads(lambda *e: st_loss.compute_loss_from_embeddings(list(e), None), *columns)
    got, got_grads = _grads(lambda a, *c: losses.mnrl_loss(a, torch.cat(c), 20.0, directions=directions,
                                                           partition_mode=partition_mode), *columns)
    assert abs(got - expected) <= 1e-5
    for g, e in zip(got_grads, expected_grads):
        assert torch.allclose(g, e, atol=1e-6)


def test_symmetric_loss_by_hand():
    # a1 = (1, 0), a2 = (0, 1); p1 = (1, 0), p2 = (1, 1)/√2; scale 1, per direction:
    # query→doc rows as in test_mnrl_by_hand; doc→query: p1 against (a1, a2) = (1, 0), p2 against = (r, r)
    r = 1 / math.sqrt(2)
    q2d = [math.log(math.exp(1) + math.exp(r)), math.log(1 + math.exp(r))]
    d2q = [math.log(math.exp(1) + 1), math.log(2 * math.exp(r))]
    expected = ((q2d[0] + d2q[0]) / 2 - 1 + (q2d[1] + d2q[1]) / 2 - r) / 2
    got = losses.mnrl_loss(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[1.0, 0.0], [1.0, 1.0]]), 1.0,
                           directions=("query_to_doc", "doc_to_query"), partition_mode="per_direction")
    assert got.item() == pytest.approx(expected, abs=1e-6)
