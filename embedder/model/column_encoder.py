"""Every column of a training batch (anchors, positives, negatives…) embedded in one call: one DDP forward per step.

On the CPU, with the hand-written encoder, the columns also go through the transformer as one batch: padded to the
longest, run packed with attention per length group (embedder/model/packing.py, so the short queries are not padded
to the passages' length), then pooled each with its own mask and prompt length — the numbers of one forward per
column, in larger matrix products. Elsewhere (a GPU, another backbone) each column is one forward.

The work is split where the data is: `inputs` runs on the host (the joined batch, every packing plan, from the
tokenizer's CPU tensors) and its result goes to the device with embedder/model/transfer.py; `forward` then reads
nothing back from the device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .encoder import Encoder


@dataclass
class EncoderInput:
    """What ColumnEncoder embeds: each column's features (its mask and prompt length pool its embeddings; with its
    packing plan when it runs alone) and, when the columns run as one batch, that batch with its plan."""
    columns: list[dict]
    joined: dict | None = None


class ColumnEncoder(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def joins(self, columns: list[dict]) -> bool:
        model = self.model
        return len(columns) > 1 and isinstance(model.backbone, Encoder) and model.device.type == "cpu" and \
            len({"token_type_ids" in c for c in columns}) == 1

    def inputs(self, columns: list[dict]) -> EncoderInput:
        """On the host: the columns' tokenised CPU features -> what `forward` takes (still on the CPU)."""
        model = self.model
        if not self.joins(columns):
            return EncoderInput([model.plan(features) for features in columns])
        longest = max(c["input_ids"].shape[1] for c in columns)

        def padded(key, value):
            return torch.cat([F.pad(c[key], (0, longest - c[key].shape[1]), value=value) for c in columns])

        joined = {"input_ids": padded("input_ids", model.tokenizer.pad_token_id),
                  "attention_mask": padded("attention_mask", 0)}
        if "token_type_ids" in columns[0]:
            joined["token_type_ids"] = padded("token_type_ids", 0)
        return EncoderInput(columns, model.plan(joined))

    def forward(self, inputs: EncoderInput) -> list[torch.Tensor]:
        model = self.model
        if inputs.joined is None:
            return [model(features) for features in inputs.columns]
        joined = inputs.joined
        tokens = model.backbone(joined["input_ids"], joined["attention_mask"], joined.get("token_type_ids"),
                                packed=joined.get("packing", True))
        embeddings, start = [], 0
        for features in inputs.columns:
            rows, length = features["input_ids"].shape
            embeddings.append(model.sentence_embedding(tokens[start:start + rows, :length], features))
            start += rows
        return embeddings


__all__ = ["ColumnEncoder", "EncoderInput"]
