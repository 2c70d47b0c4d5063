"""What a run's settings mean, said before it starts, and the collapse check after it ends."""

from __future__ import annotations

import numpy as np
import torch

from . import batching


def mean_offdiagonal_cosine(model, texts: list[str], batch_size: int) -> float:
    """Collapse check: the mean cosine between different texts (near 1 means every text looks alike)."""
    emb = model.encode(texts[:200], batch_size=batch_size, convert_to_numpy=False).float()
    emb = torch.nn.functional.normalize(emb, dim=1)
    sims = emb @ emb.T
    n = sims.shape[0]
    return float((sims.sum() - sims.diagonal().sum()) / max(n * n - n, 1))


def startup_report(model, config, train_sets, trainer) -> list[str]:
    """What the settings really mean, in plain lines."""
    pairs = sum(len(ds) for ds in train_sets)
    n_neg_cols = len(train_sets[0].columns) - 2
    B = config.batch_size
    # gathered across torchrun processes, every anchor sees the whole global batch's candidates
    G = trainer.global_batch if trainer.context.enabled and config.gather_across_devices else B
    negatives = (G - 1) + G * n_neg_cols
    steps_per_epoch = len(trainer.plan[0]) if trainer.plan else 0
    dup = np.mean([batching.duplicate_share(ds.text_ids, B) for ds in train_sets])
    passages = [ids for ds in train_sets for col in ds.ids[1:] for ids in col]
    truncated = np.mean([len(ids) >= model.max_seq_length for ids in passages]) if passages else 0.0
    lines = [
        f"base model: {config.base} ({model.embedding_dimension} dims, max_seq_length {model.max_seq_length}, "
        f"precision {trainer.precision} on {trainer.device})",
        f"training pairs: {pairs} in {len(train_sets)} set(s), columns {', '.join(train_sets[0].columns)}",
        f"steps: {steps_per_epoch} per epoch x {config.epochs} epochs = {trainer.total_steps} optimiser steps "
        f"(batch {B}, warmup {trainer.warmup})",
        f"negatives per query: {negatives} ({G - 1} in-batch" + (f" + {G * n_neg_cols} hard)" if n_neg_cols else ")"),
        f"random batches of {B} holding a repeated text: {dup:.1%}; sampler: {config.sampler}"
        + (", duplicates masked in the loss" if config.mask_duplicates else ""),
        f"passages truncated at max_seq_length {model.max_seq_length}: {truncated:.1%}",
        f"scale {config.scale:g} = temperature {1 / config.scale:.3g}; lr {config.lr:g}, linear decay, "
        f"max_grad_norm {config.max_grad_norm:g}",
        "loss: " + (f"Matryoshka over dims {list(trainer.dims)} of MNRL" if trainer.dims else "MNRL"),
    ]
    if trainer.select_metric:
        lines.append(f"best checkpoint chosen by {trainer.select_metric}")
    return lines
