"""A training batch on the device: `collate` pads this process's slice of a global batch column by column
(anchors, positives, negatives…), each column's token ids to its own longest row (embedder/data/batching.py `pad`).
The batch's loss is embedder/train/losses.py `loss_function`; its embedding, embedder/model/embedder.py
`ColumnEncoder`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data import batching
from . import distributed


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


__all__ = ["Batch", "collate"]
