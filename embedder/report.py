"""What a run's settings mean, said before it starts, and the collapse check after it ends."""

from __future__ import annotations

import numpy as np
import torch

from . import batching


def device_name(device) -> str:
    """What the run computed on, for the start-up report and the card: the GPU's name, or the CPU's model name
    (from /proc/cpuinfo on Linux) and the threads torch uses."""
    if getattr(device, "type", str(device)) == "cuda":
        return torch.cuda.get_device_name(device)
    import platform
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            name = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), name)
    except OSError:
        pass
    return f"CPU: {name}, {torch.get_num_threads()} threads"


def mean_offdiagonal_cosine(model, texts: list[str], batch_size: int) -> float:
    """Collapse check: the mean cosine between different texts (near 1 means every text looks alike)."""
    emb = model.encode(texts[:200], batch_size=batch_size, convert_to_numpy=False).float()
    emb = torch.nn.functional.normalize(emb, dim=1)
    sims = emb @ emb.T
    n = sims.shape[0]
    return float((sims.sum() - sims.diagonal().sum()) / max(n * n - n, 1))


def overlap_warnings(train_pairs, eval_sets) -> list[str]:
    """Eval questions that are also training anchors, and eval passages that are also training positives (the
    same text): either inflates the eval metrics. One line per eval set that overlaps."""
    anchors = {row[0] for pairs in train_pairs for row in pairs.rows}
    positives = {row[1] for pairs in train_pairs for row in pairs.rows}
    lines = []
    for name, ir in eval_sets:
        questions = sum(text in anchors for text in ir.queries.values())
        passages = sum(text in positives for text in ir.corpus.values())
        if questions or passages:
            lines.append(f"WARNING: {ir.source or name}: {questions} of {len(ir.queries)} eval questions are training "
                         f"anchors and {passages} of {len(ir.corpus)} eval passages are training positives; the "
                         "metrics are inflated: evaluate on held-out questions")
    return lines


def startup_report(model, config, plan, train_sets, trainer) -> list[str]:
    """What the settings really mean, in plain lines: the resolved plan (embedder/plan.py) and what it implies."""
    pairs = sum(len(ds) for ds in train_sets)
    B = plan.batch_size
    steps_per_epoch = trainer.epoch_lengths[0]
    dup = np.mean([batching.duplicate_share(ds.text_ids, B) for ds in train_sets])
    passages = [ids for ds in train_sets for col in ds.ids[1:] for ids in col]
    truncated = np.mean([len(ids) >= plan.max_seq_length for ids in passages]) if passages else 0.0
    in_batch = (plan.global_batch if plan.gather_across_devices else B) - 1
    lines = [
        f"base model: {plan.base} ({model.embedding_dimension} dims, max_seq_length {plan.max_seq_length}, "
        f"precision {plan.precision} on {device_name(trainer.device)}; {plan.precision_reason})",
        f"training pairs: {pairs} in {len(train_sets)} set(s), columns {', '.join(train_sets[0].columns)}",
        f"steps: {steps_per_epoch} per epoch x {plan.epochs} epochs = {trainer.total_steps} optimiser steps "
        f"(batch {B}, warmup {trainer.warmup})",
        f"negatives per query: {plan.negatives_per_query} ({in_batch} in-batch"
        + (f" + {plan.negatives_per_query - in_batch} hard)" if plan.hard_negative_columns else ")"),
        f"random batches of {B} holding a repeated text: {dup:.1%}; sampler: {plan.sampler}"
        + (", duplicates masked in the loss" if config.mask_duplicates else "")
        + (f", negatives above the positive + {config.mask_false_negatives:g} masked (false negatives)"
           if config.mask_false_negatives is not None else ""),
        f"passages truncated at max_seq_length {plan.max_seq_length}: {truncated:.1%}",
        f"scale {config.scale:g} = temperature {1 / config.scale:.3g}; lr {config.lr:g}, linear decay, "
        f"max_grad_norm {config.max_grad_norm:g}",
        "loss: " + (f"Matryoshka over dims {list(plan.dims)} of MNRL" if plan.dims else "MNRL"),
    ]
    if plan.select_metric:
        dims = ", ".join("full" if d is None else str(d) for d in plan.eval_dims)
        lines.append(f"best checkpoint chosen by {plan.select_metric}; evaluated at dims {dims}")
    if plan.query_prompt or plan.passage_prompt:
        lines.append(f"prompts: query {plan.query_prompt!r}, passage {plan.passage_prompt!r}")
    if plan.world_size > 1:
        lines.append(f"torchrun: {plan.world_size} processes x batch {B} = global batch {plan.global_batch}; "
                     f"negatives gathered across devices: {plan.gather_across_devices}")
    return lines
