"""A training batch: `collate` pads this process's slice of a global batch column by column (anchors, positives,
negatives…), each column's token ids to its own longest row (embedder/data/batching.py `pad`), and prepares on the
host everything the step needs from the data: the columns joined or not, every packing plan, the GradCache
mini-batches (embedder/model/column_encoder.py, embedder/train/gradcache.py). `Batch.to(device)` then moves it (on
CUDA from pinned memory, asynchronously), so the step reads nothing back from the device. The batch's loss is
embedder/train/losses.py `loss_function`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data import batching
from ..model.column_encoder import ColumnEncoder, EncoderInput
from ..model.transfer import to_device
from . import distributed, gradcache


@dataclass
class Batch:
    columns: EncoderInput | None  # this process's rows, padded per column (None with mini-batches)
    mini_batches: list[list[dict]] | None  # --mini-batch-size (GradCache): each column's mini-batches
    text_ids: torch.Tensor  # (rows of the global batch, columns), on the host
    sizes: list[int]  # rows per process (one entry without torchrun)

    def to(self, device: torch.device) -> Batch:
        return Batch(to_device(self.columns, device), to_device(self.mini_batches, device), self.text_ids, self.sizes)


def collate(ds: batching.TokenizedPairs, rows: list[int], encoder: ColumnEncoder, prompt_lengths: list[int | None],
            context: distributed.Context = distributed.Context(), mini_batch_size: int | None = None) -> Batch:
    """This process's slice of the global batch `rows`, padded column by column and prepared, on the host."""
    local = distributed.local_rows(rows, context.rank, context.world_size) if context.enabled else rows
    pad_id = encoder.model.tokenizer.pad_token_id
    columns = []
    for col, prompt_length in enumerate(prompt_lengths):
        features = batching.pad([ds.ids[col][r] for r in local], pad_id)
        if prompt_length:
            features["prompt_length"] = prompt_length
        columns.append(features)
    sizes = distributed.slice_sizes(len(rows), context.world_size)
    text_ids = torch.from_numpy(ds.text_ids[rows])
    if mini_batch_size:
        mini_batches = [[encoder.model.plan(chunk) for chunk in gradcache.split(features, mini_batch_size)]
                        for features in columns]
        return Batch(None, mini_batches, text_ids, sizes)
    return Batch(encoder.inputs(columns), None, text_ids, sizes)


__all__ = ["Batch", "collate"]
