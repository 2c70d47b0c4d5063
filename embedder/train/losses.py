"""Contrastive losses, as pure functions of embeddings.

In-batch-negatives cross-entropy (ST's MultipleNegativesRankingLoss; Henderson et al. 2017, van den Oord et al.
2018). Anchors a_i (B, D); candidates c_j (N, D) = the B positives followed by any hard-negative columns
(N = B·(1 + k)). With s = scale (20 = 1/temperature 0.05):

    logits_ij = s · cos(a_i, c_j)         loss = mean_i [ logsumexp_j logits_ij − logits_ii ]

so positive i is the label of anchor i and every other candidate is a negative. By default it is one-directional
(anchor → candidates). An optional boolean mask removes candidates from anchor i's softmax (logit −inf): used to
drop in-batch false negatives, i.e. other rows whose candidate text equals row i's positive. Logits, mask and
cross-entropy are computed in float32, also under autocast.

Directions (ST ≥ 6.3's `directions` / `partition_mode` of MultipleNegativesRankingLoss): with queries q (all B_g
anchors of the global batch) and p_i = c_{offset+i} the positive of anchor i, the softmax terms of row i are

    query_to_doc  s·cos(a_i, c_j) over every candidate j          (always; holds the positive)
    doc_to_query  s·cos(p_i, q_j) over every query j              (the symmetric term; its own positive is q_i)
    query_to_query s·cos(a_i, q_j), j ≠ i                         doc_to_doc s·cos(p_i, c_j), c_j not of row i

    joint:          loss_i = logsumexp(all selected terms) − s·cos(a_i, p_i)
    per_direction:  loss_i = mean over directions of logsumexp(its terms) − s·cos(a_i, p_i)

(per_direction with doc_to_query alone is open_clip's symmetric loss; all four joint is GTE's "improved
contrastive loss", Li et al. 2023). The masks above apply to the query_to_doc terms only, as ST has none.

Matryoshka (Kusupati et al. 2022; ST's MatryoshkaLoss with n_dims_per_step = −1): from one forward pass, for each
d in the nested dims truncate every embedding to its first d entries, L2-normalise, apply the inner loss, weight,
and sum:  loss = Σ_d w_d · MNRL(a[:, :d], c[:, :d]).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..model.similarity import cos_sim
from ..model.transfer import copy_to
from . import distributed
from .collator import Batch


DIRECTIONS = ("query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc")
ONE_WAY = ("query_to_doc",)  # ST's default: MNRL as in the formula above
PARTITION_MODES = ("joint", "per_direction")


def mnrl_loss(anchors: torch.Tensor, candidates: torch.Tensor, scale: float = 20.0,
              mask: torch.Tensor | None = None, offset: int = 0,
              false_negative_margin: float | None = None, directions: Sequence[str] = ONE_WAY,
              partition_mode: str = "joint", queries: torch.Tensor | None = None) -> torch.Tensor:
    """anchors (B, D), candidates (N ≥ B, D) with candidates[offset + i] the positive of anchors[i] (offset > 0 when
    the candidates were gathered from several devices); mask (B, N) True = drop; false_negative_margin: see
    false_negative_mask; directions / partition_mode: see the module docstring; queries (B_g, D): every anchor of
    the global batch, anchors[i] at offset + i (default: the anchors themselves, offset 0)."""
    anchors, candidates = anchors.float(), candidates.float()
    cosine = cos_sim(anchors, candidates)  # (B, N)
    logits = scale * cosine
    if false_negative_margin is not None:
        dropped = false_negative_mask(cosine, offset, false_negative_margin)
        mask = dropped if mask is None else mask | dropped
    if mask is not None:
        logits = logits.masked_fill(mask, float("-inf"))
    if anchors.shape[0] == 0:  # a torchrun process whose slice of a short last batch is empty: loss 0, in the graph
        return logits.sum()
    rows = torch.arange(anchors.shape[0], device=anchors.device)
    labels = offset + rows
    if tuple(directions) == ONE_WAY:
        return F.cross_entropy(logits, labels)
    queries = anchors if queries is None else queries.float()
    positives = candidates[labels]  # (B, D)
    terms = [logits]
    if "query_to_query" in directions:
        itself = torch.zeros(len(rows), queries.shape[0], dtype=torch.bool, device=anchors.device)
        itself[rows, labels] = True
        terms.append((scale * cos_sim(anchors, queries)).masked_fill(itself, float("-inf")))
    if "doc_to_query" in directions:
        terms.append(scale * cos_sim(positives, queries))
    if "doc_to_doc" in directions:  # every candidate of row i (its positive, its hard negatives) left out
        own = (torch.arange(candidates.shape[0], device=anchors.device) % queries.shape[0])[None, :] == labels[:, None]
        terms.append((scale * cos_sim(positives, candidates)).masked_fill(own, float("-inf")))
    positive = logits[rows, labels]
    if partition_mode == "joint":
        log_z = torch.logsumexp(torch.cat(terms, dim=1), dim=1)
    else:
        log_z = torch.stack([torch.logsumexp(t, dim=1) for t in terms]).mean(0)
    return (log_z - positive).mean()


@torch.no_grad()
def false_negative_mask(cosine: torch.Tensor, offset: int, margin: float) -> torch.Tensor:
    """(B, N) True where candidate j of anchor i is more similar to it than its own positive by more than `margin`:
    cos(a_i, c_j) > cos(a_i, c_{offset+i}) + margin, j ≠ offset + i — most likely an unlabelled answer (a second
    question about the same passage, a near-duplicate passage), dropped from the softmax rather than pushed away
    (self-guided masking, as Qwen3-Embedding and pplx-embed train; margin 0.1 there). Computed without gradient,
    in float32; margin = inf masks nothing."""
    rows = torch.arange(cosine.shape[0], device=cosine.device)
    positive = cosine[rows, offset + rows]
    mask = cosine.float() > (positive.float() + margin)[:, None]
    mask[rows, offset + rows] = False
    return mask


def duplicate_mask(candidate_text_ids: torch.Tensor, batch_size: int, offset: int = 0) -> torch.Tensor:
    """(B, N) mask of candidates whose text equals anchor i's positive text, except the positive itself.

    candidate_text_ids: (N,) an id per distinct text, candidates in the loss's order (positives first, anchor i's
    positive at offset + i)."""
    positives = candidate_text_ids[offset:offset + batch_size]
    mask = positives[:, None] == candidate_text_ids[None, :]
    rows = torch.arange(batch_size)
    mask[rows, offset + rows] = False
    return mask


def directions_problem(directions, partition_mode) -> str | None:
    """What is wrong with a loss's directions and partition mode, as ST 6.3's MNRL checks them; None if nothing."""
    if not isinstance(directions, tuple) or "query_to_doc" not in directions or \
            len(set(directions)) != len(directions) or not set(directions) <= set(DIRECTIONS):
        return "give a comma list of " + ", ".join(DIRECTIONS) + " that holds query_to_doc (the positive)"
    if partition_mode not in PARTITION_MODES:
        return "give --partition-mode joint or per_direction"
    if partition_mode == "per_direction" and {"query_to_query", "doc_to_doc"} & set(directions):
        return "query_to_query and doc_to_doc hold no positive, so per_direction is not defined (ST refuses it " \
               "too); use --partition-mode joint"
    return None


def validate_dims(dims: Sequence[int], embedding_dimension: int, weights: Sequence[float] | None = None):
    """Dims sorted descending with their weights; ValueError naming the bad value otherwise."""
    dims = list(dims)
    weights = [1.0] * len(dims) if weights is None else list(weights)
    if not dims:
        raise ValueError("Matryoshka needs at least one dimension")
    if len(weights) != len(dims):
        raise ValueError(f"{len(weights)} Matryoshka weights for {len(dims)} dims")
    for d in dims:
        if not isinstance(d, int) or d <= 0:
            raise ValueError(f"Matryoshka dim {d!r} must be a positive integer")
        if d > embedding_dimension:
            raise ValueError(f"Matryoshka dim {d} is larger than the model's {embedding_dimension} dimensions")
    if len(set(dims)) != len(dims):
        raise ValueError(f"Matryoshka dims {dims} repeat a value")
    pairs = sorted(zip(dims, weights), key=lambda p: -p[0])
    return [d for d, _ in pairs], [w for _, w in pairs]


def matryoshka_loss(anchors: torch.Tensor, candidates: torch.Tensor, dims: Sequence[int],
                    weights: Sequence[float] | None = None, scale: float = 20.0,
                    mask: torch.Tensor | None = None, offset: int = 0,
                    false_negative_margin: float | None = None, directions: Sequence[str] = ONE_WAY,
                    partition_mode: str = "joint", queries: torch.Tensor | None = None) -> torch.Tensor:
    """Σ_d w_d · mnrl_loss on the first d entries (re-normalised) of every embedding (false negatives, when
    masked, judged at each dim)."""
    weights = [1.0] * len(dims) if weights is None else weights
    total = anchors.new_zeros((), dtype=torch.float32)
    for d, w in zip(dims, weights):
        a = F.normalize(anchors[:, :d].float(), p=2, dim=-1)
        c = F.normalize(candidates[:, :d].float(), p=2, dim=-1)
        q = None if queries is None else F.normalize(queries[:, :d].float(), p=2, dim=-1)
        total = total + w * mnrl_loss(a, c, scale, mask, offset, false_negative_margin, directions, partition_mode, q)
    return total


def loss_function(batch: Batch, config, context: distributed.Context):
    """(loss_of, weight) for the run's RunConfig `config` (config.py): loss_of(embeddings per column) is the mean
    loss over this process's anchors; the backward runs on loss · weight, this process's share of the global batch
    (see distributed.py)."""
    gather = config.gather_across_devices
    offset = sum(batch.sizes[:context.rank]) if gather else 0
    n_local = batch.sizes[context.rank] if context.enabled else sum(batch.sizes)
    weight = n_local * context.world_size / sum(batch.sizes) if gather else 1.0
    local_rows = slice(None)
    if context.enabled and not gather:
        start = sum(batch.sizes[:context.rank])
        local_rows = slice(start, start + n_local)

    def loss_of(embeddings: list[torch.Tensor]) -> torch.Tensor:
        anchors, columns = embeddings[0], embeddings[1:]  # (B, D) and (B, D) per candidate column
        if gather:
            columns = [distributed.gather_with_grad(c, batch.sizes) for c in columns]
        candidates = torch.cat(columns, dim=0)  # positives first, then each negative column
        mask = None
        settings = config.settings
        if settings.mask_duplicates:
            ids = batch.text_ids if gather else batch.text_ids[local_rows]
            mask = copy_to(duplicate_mask(ids[:, 1:].T.reshape(-1), anchors.shape[0], offset), anchors.device)
        directions, partition = settings.directions, settings.partition_mode
        queries = None  # the other directions score against every anchor of the global batch
        if gather and tuple(directions) != ONE_WAY:
            queries = distributed.gather_with_grad(anchors, batch.sizes)
        margin = settings.mask_false_negatives
        if config.dims:
            return matryoshka_loss(anchors, candidates, config.dims, config.weights, settings.scale, mask,
                                   offset, margin, directions, partition, queries)
        return mnrl_loss(anchors, candidates, settings.scale, mask, offset, margin, directions, partition, queries)

    return loss_of, weight
