"""The fine-tuning loop: MNRL (+ Matryoshka) with AdamW, a linear schedule, clipping and mixed precision.

One step, in order:
  1. lr ← base_lr · lr_multiplier(step)                             (optim.py)
  2. embed each column of the batch (anchors, positives, negatives) under autocast (bf16/fp16 on CUDA)
  3. loss in float32: Σ_d w_d · MNRL(truncate_d(anchors), truncate_d(candidates))  (losses.py)
  4. a non-finite loss skips the step; `max_bad_steps` in a row stop the run (the last checkpoint stays good)
  5. scaled backward (GradScaler, active for fp16 only) → unscale → clip to max_grad_norm → AdamW step
  6. log / evaluate / checkpoint at their intervals
Weights stay float32 throughout. Batches come from batching.py (seeded by seed and epoch), so a run resumed from a
checkpoint replays the same batches, dropout masks included (the RNG state is in the checkpoint). Under torchrun
each process embeds its slice of the global batch and the candidates are gathered (distributed.py); with
--mini-batch-size the embedding and backward go through GradCache (gradcache.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import batch_loss, batching, checkpoints, distributed, gradcache, losses, optim
from .errors import UserError
from .evaluation import InformationRetrievalEvaluator
from .pipeline import precision_context
from .stop_signals import StopSignals
from .train_config import PRECISIONS, TrainConfig

class TrainingStopped(Exception):
    """The run stopped (non-finite losses, an interrupt, a failed write); the message is one line for the user.
    exit_code: 1, or 128 + the signal number when a signal stopped it before anything was trained."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(" ".join(str(message).split()))
        self.exit_code = exit_code


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision not in PRECISIONS:
        raise UserError(f"--precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    if device.type != "cuda":
        if precision == "fp16":
            raise UserError("--precision fp16 needs a CUDA GPU (no GradScaler on the CPU); use fp32 or bf16")
        return "fp32" if precision == "auto" else precision
    if precision == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return precision


MAX_PLANNED_ROWS = 50_000_000  # epochs x pairs without --max-steps; past it planning alone takes minutes


@dataclass
class RunState:
    """Where the loop is; saved in every checkpoint."""
    step: int = 0  # optimiser steps done
    epoch: int = 0
    batch_in_epoch: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    bad_steps: int = 0
    finite_steps: int = 0  # steps whose loss was finite (a run with none has trained nothing)
    base: str = ""  # the base model the run started from; --resume refuses another
    plan: dict = field(default_factory=dict)  # the settings that fix the batches (see Trainer.plan_settings)
    base_metrics: dict = field(default_factory=dict)  # the base model's, from the run's first start
    scaler: dict = field(default_factory=dict)


class Trainer:
    def __init__(self, model, config: TrainConfig, train_sets: list[batching.TokenizedPairs],
                 evaluators: list[InformationRetrievalEvaluator], select_metric: str | None, log_path: Path,
                 echo=print, context: distributed.Context = distributed.Context()):
        self.model, self.config, self.train_sets, self.evaluators = model, config, train_sets, evaluators
        self.select_metric, self.log_path, self.context = select_metric, log_path, context
        self.echo = echo if context.is_main else (lambda *a, **k: None)
        self.device = model.device
        self.precision = resolve_precision(config.precision, self.device)
        self.autocast = precision_context(self.device, self.precision)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision == "fp16")
        self.optimizer = optim.make_optimizer(model, config.lr, config.weight_decay)
        self.dims, self.weights = (losses.validate_dims(config.matryoshka_dims, model.embedding_dimension,
                                                        config.matryoshka_weights)
                                   if config.matryoshka_dims else (None, None))
        self.prompt_lengths = [model.tokenizer.prompt_length(config.query_prompt) if config.query_prompt else None]
        n_cols = len(train_sets[0].columns)
        self.prompt_lengths += [model.tokenizer.prompt_length(config.passage_prompt) if config.passage_prompt else None
                                ] * (n_cols - 1)
        self.encoder = batch_loss.ColumnEncoder(model)
        self.ddp = None
        if context.enabled:
            from torch.nn.parallel import DistributedDataParallel
            self.ddp = DistributedDataParallel(self.encoder, device_ids=[self.device.index] if self.device.type == "cuda"
                                               else None)
        self.global_batch = config.batch_size * context.world_size
        rows = sum(len(ds) for ds in train_sets)
        if not config.max_steps and config.epochs * rows > MAX_PLANNED_ROWS:
            raise UserError(f"--epochs {config.epochs} over {rows} pairs is {config.epochs * rows:,} rows to plan and "
                            "train; give --max-steps, or fewer epochs")
        self.plan = []  # epochs are planned until --max-steps is reached, so --epochs may be large with --max-steps
        for epoch in range(config.epochs):
            self.plan.append(batching.epoch_batches(train_sets, self.global_batch, config.sampler, config.seed, epoch))
            if config.max_steps and sum(len(p) for p in self.plan) >= config.max_steps:
                break
        self.total_steps = sum(len(p) for p in self.plan)
        if config.max_steps:
            self.total_steps = min(self.total_steps, config.max_steps)
        self.warmup = optim.warmup_steps(self.total_steps, config.warmup_ratio, config.warmup_steps)
        self.state = RunState(base=config.base, plan=self.plan_settings())
        self.best_weights = None
        self.log_rows: list[dict] = []

    # ----- logging and evaluation ----------------------------------------------------------------------------
    def log(self, row: dict) -> None:
        if not self.context.is_main:
            return
        self.log_rows.append(row)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")

    def evaluate(self) -> dict[str, float]:
        """Metrics on every eval set (rank 0 only; the other processes wait)."""
        metrics = {}
        if self.context.is_main:
            for evaluator in self.evaluators:
                metrics.update(evaluator(self.model))
        distributed.barrier(self.context)
        self.model.train()
        return metrics

    def epoch_fraction(self) -> float:
        steps_in_epoch = len(self.plan[self.state.epoch]) if self.state.epoch < len(self.plan) else 1
        return round(self.state.epoch + self.state.batch_in_epoch / steps_in_epoch, 4)

    def evaluate_and_track(self) -> dict[str, float]:
        metrics = self.evaluate()
        self.log({"step": self.state.step, "epoch": self.epoch_fraction(), **metrics})
        value = metrics.get(self.select_metric) if self.select_metric else None
        if value is not None:
            self.echo(f"  step {self.state.step} (epoch {self.epoch_fraction()}): {self.select_metric} = {value:.4f}")
            if self.state.best_metric is None or value > self.state.best_metric:
                self.state.best_metric, self.state.best_step = value, self.state.step
                if self.config.keep_best:
                    self.best_weights = checkpoints.model_state(self.model)
                    if self.config.save_steps:
                        checkpoints.save_weights(self.config.checkpoint_dir / "best", self.best_weights,
                                                 {"step": self.state.step, "metric": value})
        return metrics

    # ----- checkpoints ---------------------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        self.state.scaler = self.scaler.state_dict() if self.scaler.is_enabled() else {}
        folder = self.config.checkpoint_dir / f"step-{self.state.step}"
        rng = checkpoints.rng_state()
        if self.context.enabled:  # every process's dropout RNG, so a resumed run draws the same masks
            states = [None] * self.context.world_size
            torch.distributed.all_gather_object(states, rng)
            rng = states
        if self.context.is_main:
            checkpoints.save_checkpoint(folder, self.model, self.optimizer, asdict(self.state), rng)
            checkpoints.prune(self.config.checkpoint_dir, self.config.save_total_limit)
        distributed.barrier(self.context)
        return folder

    def plan_settings(self) -> dict:
        """What decides the batches and the loss: a resumed run must match all of it (the data by content)."""
        digest = hashlib.sha256()
        for ds in self.train_sets:
            for column in ds.ids:
                for ids in column:
                    digest.update(np.asarray(ids, dtype=np.int64).tobytes() + b"|")
        config = self.config
        return {"batch_size": config.batch_size, "epochs": config.epochs, "seed": config.seed,
                "sampler": config.sampler, "matryoshka_dims": list(self.dims) if self.dims else None,
                "world_size": self.context.world_size, "training data": digest.hexdigest()[:16]}

    def save_final_checkpoint(self) -> Path:
        """The end of training, written before anything else can go wrong: a checkpoint of this step (unless one
        exists) and the best weights so far, so `--resume` can finish the run from here."""
        folder = self.config.checkpoint_dir / f"step-{self.state.step}"
        if self.context.is_main and self.config.keep_best and self.best_weights is not None:
            checkpoints.save_weights(self.config.checkpoint_dir / "best", self.best_weights,
                                     {"step": self.state.best_step, "metric": self.state.best_metric})
        if not (folder / "trainer_state.json").is_file():
            folder = self.save_checkpoint()
        distributed.barrier(self.context)
        return folder

    def resume(self, base: str) -> bool:
        """Continue from the newest checkpoint; UserError when it is damaged or comes from another base model."""
        found = checkpoints.list_checkpoints(self.config.checkpoint_dir)
        if not found:
            return False
        step, folder = found[-1]
        saved = checkpoints.load_checkpoint(folder, self.model, self.optimizer, self.context.rank)
        try:
            self.state = RunState(**saved)
        except TypeError:
            raise UserError(f"{folder / 'trainer_state.json'} does not describe a run of this version; "
                            "start without --resume (or use --overwrite)") from None
        if self.state.base and self.state.base != base:
            raise UserError(f"--resume: {folder} continues a run from base {self.state.base!r}, not {base!r}; "
                            "give the same --base, or start over with --overwrite")
        for key, now in self.plan_settings().items():
            before = self.state.plan.get(key, now)
            if before != now:
                raise UserError(f"--resume: {key} changed since {folder} ({before} -> {now}); a resumed run must draw "
                                "the same batches: give the original setting, or start over with --overwrite")
        if self.state.scaler and self.scaler.is_enabled():
            self.scaler.load_state_dict(self.state.scaler)
        best = self.config.checkpoint_dir / "best"
        if self.config.keep_best and (best / "model.safetensors").is_file():
            self.best_weights = checkpoints.load_weights(best, self.model)
        if self.log_path.is_file() and self.context.is_main:  # drop log rows written after this checkpoint
            rows = [json.loads(line) for line in self.log_path.read_text(encoding="utf-8").splitlines() if line]
            self.log_rows = [r for r in rows if r.get("step", 0) <= step]
            self.log_path.write_text("".join(json.dumps(r) + "\n" for r in self.log_rows), encoding="utf-8")
        self.echo(f"resumed from {folder} (step {step})")
        return True

    # ----- the loop ------------------------------------------------------------------------------------------
    def all_finite(self, loss: torch.Tensor) -> bool:
        """Whether the loss is finite on every process (they must skip a step together)."""
        finite = torch.isfinite(loss.detach()).to(torch.int32).reshape(1)
        if self.context.enabled:
            torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
        return bool(finite.item())

    def forward_backward(self, batch: batch_loss.Batch) -> tuple[torch.Tensor, bool]:
        """Loss of the batch with gradients accumulated (unless it is not finite somewhere)."""
        loss_of, weight = batch_loss.loss_function(batch, self.config, self.dims, self.weights, self.context)
        encoder = self.ddp or self.encoder
        if self.config.mini_batch_size:
            no_sync = self.ddp.no_sync if self.ddp is not None else contextlib.nullcontext
            loss = gradcache.cached_forward_backward(
                lambda features: encoder([features])[0], batch.columns, loss_of, self.config.mini_batch_size,
                self.autocast, scale_loss=self.scaler.scale, no_sync=no_sync, all_finite=self.all_finite)
            return loss / weight, self.all_finite(loss)
        with self.autocast:
            embeddings = encoder(batch.columns)
        loss = loss_of(embeddings)
        if not self.all_finite(loss):
            return loss.detach(), False
        self.scaler.scale(loss).backward()
        return loss.detach() / weight, True

    def step(self, batch: batch_loss.Batch) -> tuple[float, float]:
        config, state = self.config, self.state
        lr = config.lr * optim.lr_multiplier(state.step, self.total_steps, self.warmup)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss, finite = self.forward_backward(batch)
        if not finite:
            self.optimizer.zero_grad(set_to_none=True)
            state.bad_steps += 1
            if state.bad_steps >= config.max_bad_steps:
                kept = checkpoints.list_checkpoints(config.checkpoint_dir)
                where = f"; the last good checkpoint is {kept[-1][1]}" if kept else ""
                raise TrainingStopped(f"the loss was NaN/inf for {state.bad_steps} steps in a row at step {state.step}"
                                      f"{where}; lower --lr or use --precision fp32")
            return float("nan"), lr
        state.bad_steps = 0
        state.finite_steps += 1
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.item(), lr

    def run(self, progress=None, step_hook=None, stop: StopSignals | None = None) -> None:
        """Train to the end (or --max-steps). A stop signal (see stop_signals) is acted on at a step boundary:
        a checkpoint is saved and TrainingStopped raised. progress: an embedder.progress.Progress; the loop's own
        lines (evaluations) go through its write()."""
        echo = self.echo
        if progress is not None and self.context.is_main:
            self.echo = progress.write
        try:
            self._run(progress, step_hook, stop or StopSignals())
        finally:
            self.echo = echo

    def _run(self, progress, step_hook, stop: StopSignals) -> None:
        config, state = self.config, self.state
        self.model.train()
        pad_id = self.model.tokenizer.pad_token_id
        running, count = 0.0, 0
        with stop.deferred():
            while state.epoch < config.epochs and state.step < self.total_steps:
                plan = self.plan[state.epoch]
                while state.batch_in_epoch < len(plan) and state.step < self.total_steps:
                    set_index, rows = plan[state.batch_in_epoch]
                    batch = batch_loss.collate(self.train_sets[set_index], rows, pad_id, self.prompt_lengths, self.device,
                                    self.context)
                    loss, lr = self.step(batch)
                    state.step += 1
                    state.batch_in_epoch += 1
                    if math.isfinite(loss):
                        running, count = running + loss, count + 1
                    if step_hook is not None:
                        step_hook(state.step)
                    if progress is not None:
                        progress.update(state.step, loss, self.epoch_fraction())
                    if state.step % config.logging_steps == 0 and count:
                        self.log({"step": state.step, "epoch": self.epoch_fraction(), "loss": running / count, "lr": lr})
                        running, count = 0.0, 0
                    at_epoch_end = state.batch_in_epoch == len(plan)
                    at_run_end = state.step == self.total_steps  # --max-steps may stop mid-epoch: score that model too
                    if self.evaluators and (at_epoch_end or at_run_end
                                            or (config.eval_steps and state.step % config.eval_steps == 0)):
                        self.evaluate_and_track()
                    if at_epoch_end:
                        state.epoch, state.batch_in_epoch = state.epoch + 1, 0
                    if config.save_steps and state.step % config.save_steps == 0 and not state.bad_steps:
                        self.save_checkpoint()  # never right after a skipped (non-finite) step
                    if distributed.broadcast_flag(bool(stop.requested), self.context):
                        folder = self.save_checkpoint()
                        raise TrainingStopped(f"interrupted at step {state.step} ({stop.requested or 'on rank 0'}): "
                                              f"checkpoint saved to {folder}; continue with --resume")
                    if at_epoch_end:
                        break
        if count:
            self.log({"step": state.step, "epoch": self.epoch_fraction(), "loss": running / count})
        self.model.eval()

    def finish_weights(self) -> int:
        """Load the best weights into the model when keeping the best; returns the step they come from."""
        if self.config.keep_best and self.best_weights is not None and self.state.best_step is not None:
            self.model.load_state_dict(self.best_weights)
            return self.state.best_step
        return self.state.step


__all__ = ["TrainConfig", "Trainer", "TrainingStopped"]
