"""GradCache against the plain loss on the same batch: loss and every parameter gradient equal (<= 1e-5, dropout
off), for MNRL and Matryoshka, hard negatives included; with dropout on, the replayed mini-batches draw the same
masks as the first pass (gradients equal a chunked forward with the graph kept)."""

import pytest
import torch

import embedder
from embedder.model.precision import autocast
from embedder.train import gradcache, losses

ANCHORS = [f"question number {i} about topic {i % 5}" for i in range(12)]
POSITIVES = [f"a passage that answers question {i}, " + "with more words " * (i % 4) for i in range(12)]
NEGATIVES = [f"an unrelated passage {i}" for i in range(12)]


def _loss(dims):
    def loss_of(embeddings):
        anchors, candidates = embeddings[0], torch.cat(embeddings[1:])
        return losses.matryoshka_loss(anchors, candidates, dims) if dims else losses.mnrl_loss(anchors, candidates)
    return loss_of


def _gradients(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("dims", [None, (32, 16, 8)])
@pytest.mark.parametrize("with_negative", [False, True])
def test_cached_equals_uncached(tiny_bert_no_dropout, dims, with_negative):
    model = embedder.load(str(tiny_bert_no_dropout), device="cpu").train()
    columns = [model.tokenize(ANCHORS), model.tokenize(POSITIVES)] + ([model.tokenize(NEGATIVES)] if with_negative else [])

    loss_of = _loss(dims)

    torch.manual_seed(7)
    plain = loss_of([model(features) for features in columns])
    plain.backward()
    expected = _gradients(model)
    model.zero_grad(set_to_none=True)

    torch.manual_seed(7)
    mini_batches = [[model.plan(chunk) for chunk in gradcache.split(features, 5)] for features in columns]
    cached = gradcache.cached_forward_backward(model, mini_batches, loss_of,
                                               autocast=autocast(torch.device("cpu"), "fp32"))
    got = _gradients(model)
    assert abs(cached.item() - plain.item()) <= 1e-5
    assert set(got) == set(expected)
    for name in expected:
        assert torch.allclose(got[name], expected[name], atol=1e-5), name


def test_dropout_masks_are_replayed(tiny_bert_folder):
    model = embedder.load(str(tiny_bert_folder), device="cpu").train()  # dropout on
    columns = [model.tokenize(ANCHORS), model.tokenize(POSITIVES)]
    loss_of = _loss((32, 8))
    torch.manual_seed(11)  # reference: the same mini-batches, in the same order, with the graph kept
    embeddings = [torch.cat([model(chunk) for chunk in gradcache.split(features, 5)]) for features in columns]
    reference = loss_of(embeddings)
    reference.backward()
    expected = _gradients(model)
    model.zero_grad(set_to_none=True)
    torch.manual_seed(11)
    mini_batches = [[model.plan(chunk) for chunk in gradcache.split(features, 5)] for features in columns]
    cached = gradcache.cached_forward_backward(model, mini_batches, loss_of, autocast(torch.device("cpu"), "fp32"))
    assert abs(cached.item() - reference.item()) <= 1e-5
    for name, grad in _gradients(model).items():
        assert torch.allclose(grad, expected[name], atol=1e-5), name
