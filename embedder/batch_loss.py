"""A training batch on the device, and its loss.

`collate` pads this process's slice of a global batch column by column (anchors, positives, negatives…);
`ColumnEncoder` embeds every column in one call (one DDP forward per step); `loss_function` turns the column
embeddings into this process's share of the batch loss: Σ_d w_d · MNRL(truncate_d(anchors), truncate_d(candidates))
with candidates = positives then each negative column, gathered across processes under torchrun (see
distributed.py for the weighting), duplicates masked when asked.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import batching, distributed, losses
from .encoder import Encoder
from .plan import Plan
from .train_config import TrainConfig

class ColumnEncoder(torch.nn.Module):
    """Embeds every column of a batch in one call (one DDP forward per step). On the CPU, with the hand-written
    encoder, the columns also go through the transformer as one batch: padded to the longest, run packed with
    attention per length group (embedder/packing.py, so the short queries are not padded to the passages'
    length), then pooled each with its own mask and prompt length — the numbers of one forward per column, in
    larger matrix products."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, columns: list[dict]) -> list[torch.Tensor]:
        model = self.model
        if len(columns) == 1 or not isinstance(model.backbone, Encoder) or model.device.type != "cpu" or \
                len({"token_type_ids" in c for c in columns}) > 1:
            return [model(features) for features in columns]
        longest = max(c["input_ids"].shape[1] for c in columns)

        def padded(key, value):
            return torch.cat([F.pad(c[key], (0, longest - c[key].shape[1]), value=value) for c in columns])

        tokens = model.backbone(padded("input_ids", model.tokenizer.pad_token_id), padded("attention_mask", 0),
                                padded("token_type_ids", 0) if "token_type_ids" in columns[0] else None)
        embeddings, start = [], 0
        for features in columns:
            rows, length = features["input_ids"].shape
            pooled = model.pooling(tokens[start:start + rows, :length], features["attention_mask"],
                                   features.get("prompt_length"))
            embeddings.append(model.normalize(pooled) if model.normalize is not None else pooled)
            start += rows
        return embeddings


@dataclass
class Batch:
    columns: list[dict[str, torch.Tensor]]  # this process's rows, padded per column
    text_ids: torch.Tensor  # (rows of the global batch, columns)
    sizes: list[int]  # rows per process (one entry without torchrun)


def collate(ds: batching.TokenizedPairs, rows: list[int], pad_id: int, prompt_lengths: list[int | None],
            device: torch.device, context: distributed.Context = distributed.Context()) -> Batch:
    """Pad this process's slice of the global batch `rows`, column by column."""
    local = distributed.local_rows(rows, context.rank, context.world_size) if context.enabled else rows
    columns = []
    for col, prompt_length in enumerate(prompt_lengths):
        features = batching.pad([ds.ids[col][r] for r in local], pad_id)
        features = {k: v.to(device, non_blocking=True) for k, v in features.items()}
        if prompt_length:
            features["prompt_length"] = prompt_length
        columns.append(features)
    return Batch(columns, torch.from_numpy(ds.text_ids[rows]),
                 distributed.slice_sizes(len(rows), context.world_size))


def loss_function(batch: Batch, config: TrainConfig, plan: Plan, context: distributed.Context):
    """(loss_of, weight): loss_of(embeddings per column) is the mean loss over this process's anchors; the
    backward runs on loss · weight, this process's share of the global batch (see distributed.py)."""
    gather = plan.gather_across_devices
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
        if config.mask_duplicates:
            ids = batch.text_ids if gather else batch.text_ids[local_rows]
            mask = losses.duplicate_mask(ids[:, 1:].T.reshape(-1), anchors.shape[0], offset).to(anchors.device)
        margin = config.mask_false_negatives
        if plan.dims:
            return losses.matryoshka_loss(anchors, candidates, plan.dims, plan.weights, config.scale, mask, offset,
                                          margin)
        return losses.mnrl_loss(anchors, candidates, config.scale, mask, offset, margin)

    return loss_of, weight


__all__ = ["Batch", "ColumnEncoder", "collate", "loss_function"]
