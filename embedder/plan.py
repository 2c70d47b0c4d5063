"""The resolved plan of a training run: every setting derived and checked once, before the first step.

`resolve(config, model, data, context)` turns what the user asked for (a TrainConfig) into what will run, given
the loaded model, the data and the torchrun context:

    precision      fp32 / bf16 / fp16 and why (embedder/precision.py)
    dims, weights  the Matryoshka dims, sorted descending, one weight each (`auto`: the seeds' dims for the width)
    eval_dims      None (full size) then every smaller Matryoshka dim
    select_metric  the metric that picks the best checkpoint (default: cosine_map@100 of the first eval set)
    batches        per-process batch b, processes P, global batch G = b·P; negatives per query (G − 1) in-batch
                   + G·n hard when gathered across processes, else (b − 1) + b·n
    prompts, max_seq_length, the training data's content hash

The plan is frozen. It is printed by the start-up report, saved in every checkpoint (a resumed run must have the
same `resume_key`) and in the model folder's train_config.json, and everything downstream reads it.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

from . import precision as precisions
from .errors import UserError
from .evaluation import prefixed_metric_names
from .losses import validate_dims

SEED_DIMS = (768, 512, 256, 128, 64)
DEFAULT_SELECT = "cosine_map@100"


def default_dims(width: int) -> tuple[int, ...]:
    """The seeds' nested dims for the model's width: 768,512,256,128,64 or 384,256,128,64."""
    return (width,) + tuple(d for d in SEED_DIMS if d < width)


@dataclass(frozen=True)
class Plan:
    base: str
    precision: str  # what runs: fp32, bf16 or fp16
    precision_reason: str
    precision_warning: str  # "" unless the precision asked for is emulated on this CPU
    dims: tuple[int, ...] | None  # Matryoshka dims, descending; None: plain MNRL
    weights: tuple[float, ...] | None
    eval_dims: tuple[int | None, ...]
    eval_names: tuple[str, ...]  # the metric prefix of each eval set ("" for a single set)
    select_metric: str | None
    batch_size: int  # per process
    world_size: int
    global_batch: int
    gather_across_devices: bool
    negatives_per_query: int
    hard_negative_columns: int
    max_seq_length: int
    query_prompt: str
    passage_prompt: str
    epochs: int
    seed: int
    sampler: str
    training_data: str  # sha256 of every training text, in order (16 hex digits)

    def resume_key(self) -> dict:
        """What decides the batches and the loss: a resumed run must match all of it."""
        return {"batch_size": self.batch_size, "epochs": self.epochs, "seed": self.seed, "sampler": self.sampler,
                "matryoshka_dims": list(self.dims) if self.dims else None, "world_size": self.world_size,
                "max_seq_length": self.max_seq_length, "training data": self.training_data}

    def to_json(self) -> dict:
        return asdict(self)


def data_digest(train_pairs) -> str:
    digest = hashlib.sha256()
    for pairs in train_pairs:
        for row in pairs.rows:
            for text in row:
                digest.update(text.encode("utf-8") + b"\0")
            digest.update(b"\n")
        digest.update(b"\f")
    return digest.hexdigest()[:16]


def resolve(config, model, train_pairs, eval_sets, context) -> Plan:
    """The plan of a run (see the module docstring); UserError naming the flag for a setting the model or the
    data cannot take. eval_sets: (spec name, IRDataset) pairs."""
    width = model.embedding_dimension
    dims = default_dims(width) if config.matryoshka_dims == "auto" else config.matryoshka_dims
    try:
        if config.matryoshka_weights and not dims:
            raise ValueError("weights were given but Matryoshka is off (--matryoshka-dims none)")
        dims, weights = (tuple(t) for t in validate_dims(dims, width, config.matryoshka_weights)) if dims else \
            (None, None)
    except ValueError as err:
        raise UserError(f"--matryoshka-dims/--matryoshka-weights: {err}") from None

    max_seq_length = model.max_seq_length
    if config.max_seq_length:
        positions = getattr(getattr(model.backbone, "config", None), "usable_positions", None)  # None: AutoModel
        if positions is not None and config.max_seq_length > positions:
            raise UserError(f"--max-seq-length {config.max_seq_length}: {config.base} has only {positions} positions; "
                            f"give at most {positions}")
        max_seq_length = config.max_seq_length

    eval_dims = (None, *[d for d in (dims or ()) if d != width])
    eval_names = tuple(name if len(eval_sets) > 1 else "" for name, _ in eval_sets)
    metric_keys = [key for name in eval_names for key in prefixed_metric_names(name, eval_dims)]
    select_metric = config.select_metric or (next((k for k in metric_keys if k.endswith(DEFAULT_SELECT)), None))
    if select_metric and select_metric not in metric_keys:
        raise UserError(f"--select-metric {select_metric!r} is not a metric of this run; valid names include "
                        f"{', '.join(metric_keys[:15])}")

    precision, reason, warning = precisions.resolve(config.precision, model.device)
    hard = len(train_pairs[0].columns) - 2  # every file has the same columns (checked when the data is read)
    global_batch = config.batch_size * context.world_size
    gathered = context.enabled and config.gather_across_devices
    seen = global_batch if gathered else config.batch_size  # candidates each anchor is scored against, per column
    return Plan(
        base=config.base, precision=precision, precision_reason=reason, precision_warning=warning, dims=dims, weights=weights,
        eval_dims=eval_dims, eval_names=eval_names, select_metric=select_metric, batch_size=config.batch_size,
        world_size=context.world_size, global_batch=global_batch, gather_across_devices=gathered,
        negatives_per_query=(seen - 1) + seen * hard, hard_negative_columns=hard, max_seq_length=max_seq_length,
        query_prompt=config.query_prompt, passage_prompt=config.passage_prompt, epochs=config.epochs,
        seed=config.seed, sampler=config.sampler, training_data=data_digest(train_pairs))


__all__ = ["Plan", "default_dims", "resolve"]
