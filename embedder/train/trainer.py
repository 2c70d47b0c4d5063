"""The fine-tuning loop: MNRL (+ Matryoshka) with AdamW, a linear schedule, clipping and mixed precision.

One step, in order:
  1. lr ← base_lr · lr_multiplier(step)                             (optim.py)
  2. embed each column of the batch (anchors, positives, negatives) under the run's autocast (precision.py)
  3. loss in float32: Σ_d w_d · MNRL(truncate_d(anchors), truncate_d(candidates))  (losses.py)
  4. scaled backward (GradScaler, active for fp16 only) → unscale → clip to max_grad_norm → AdamW step, skipped
     by the fused kernel when the loss or the gradient norm is not finite (decided on the device, optim.py)
  5. the loss and skipped steps counted on the device (health.py), read at logging / evaluation / checkpoint steps:
     `max_bad_steps` in a row stop the run there (the last checkpoint stays good)
  6. log / evaluate (tracking.py) / checkpoint (checkpoints.py) at their intervals
The step reads nothing back from the device: the batch is prepared on the host (collator.py, packing plans
included) and copied asynchronously from pinned memory on CUDA, so the host prepares the next batch while the GPU
runs this one.
Weights stay float32 throughout. Batches come from batching.py (seeded by seed and epoch), so a run resumed from a
checkpoint replays the same batches, dropout masks included (the RNG state is in the checkpoint). Under torchrun
each process embeds its slice of the global batch and the candidates are gathered (distributed.py); with
--mini-batch-size the embedding and backward go through GradCache (gradcache.py).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, field

import torch

from ..data import batching
from ..errors import UserError
from ..model.column_encoder import ColumnEncoder, EncoderInput
from ..model.precision import autocast
from . import distributed, gradcache, optim
from .checkpoints import RunStore
from .collator import Batch, collate
from .config import RunConfig
from .health import StepHealth
from .losses import loss_function
from .stop_signals import StopSignals
from .tracking import BestModelTracker


class TrainingStopped(Exception):
    """The run stopped (non-finite losses, an interrupt, a failed write); the message is one line for the user.
    exit_code: 1, or 128 + the signal number when a signal stopped it before anything was trained."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(" ".join(str(message).split()))
        self.exit_code = exit_code


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
    evals_since_best: int = 0  # evaluations since the select metric last improved (--patience)
    epochs_averaged: int = 0  # epoch ends in the --average-epochs sum (tracking.py)
    finite_steps: int = 0  # steps whose loss was finite (a run with none has trained nothing)
    base: str = ""  # the base model the run started from; --resume refuses another
    plan: dict = field(default_factory=dict)  # RunConfig.resume_key() (embedder/train/config.py)
    base_metrics: dict = field(default_factory=dict)  # the base model's, from the run's first start
    base_ranks: dict = field(default_factory=dict)  # and its per-query ranks (tracking.last_ranks)
    scaler: dict = field(default_factory=dict)
    pairs: int = 0  # training rows in the steps done (the global batch, all processes)
    step_seconds: float = 0.0  # wall time in training steps (collate, forward, backward, optimiser)
    eval_seconds: float = 0.0  # wall time in evaluations (the base model's included)


class Trainer:
    def __init__(self, model, config: RunConfig, train_sets: list[batching.TokenizedPairs],
                 tracker: BestModelTracker, store: RunStore, echo=print,
                 context: distributed.Context = distributed.Context()):
        self.model, self.config, self.train_sets = model, config, train_sets
        self.settings = settings = config.settings  # as given; `config` also holds what was derived
        self.tracker, self.store, self.context = tracker, store, context
        self.echo = echo if context.is_main else (lambda *a, **k: None)
        self.device = model.device
        self.autocast = autocast(self.device, config.precision)
        self.scaler = torch.amp.GradScaler("cuda", enabled=config.precision == "fp16")
        self.optimizer = optim.make_optimizer(model, settings.lr, settings.weight_decay)
        tokenizer = model.tokenizer
        self.prompt_lengths = [tokenizer.prompt_length(config.query_prompt) if config.query_prompt else None] + \
            [tokenizer.prompt_length(config.passage_prompt) if config.passage_prompt else None] * \
            (config.hard_negative_columns + 1)
        self.encoder = ColumnEncoder(model)
        self.ddp = None
        if context.enabled:
            from torch.nn.parallel import DistributedDataParallel
            self.ddp = DistributedDataParallel(self.encoder, device_ids=[self.device.index] if self.device.type == "cuda"
                                               else None)
        rows = sum(len(ds) for ds in train_sets)
        if not settings.max_steps and settings.epochs * rows > MAX_PLANNED_ROWS:
            raise UserError(f"--epochs {settings.epochs} over {rows} pairs is {settings.epochs * rows:,} rows to plan "
                            "and train; give --max-steps, or fewer epochs")
        # batches are planned one epoch at a time (linear in the rows, batching.py); at start each epoch is planned
        # once only to count its steps for the schedule, until --max-steps is reached (so --epochs may be large)
        self.epoch_lengths: list[int] = []
        self._planned: tuple[int, list] | None = None
        for epoch in range(settings.epochs):
            self.epoch_lengths.append(len(self.epoch_batches(epoch)))
            if settings.max_steps and sum(self.epoch_lengths) >= settings.max_steps:
                break
        self.total_steps = sum(self.epoch_lengths)
        if settings.max_steps:
            self.total_steps = min(self.total_steps, settings.max_steps)
        self.warmup = optim.warmup_steps(self.total_steps, settings.warmup_ratio, settings.warmup_steps)
        self.state = RunState(base=settings.base, plan=config.resume_key())

    def epoch_batches(self, epoch: int) -> list[tuple[int, list[int]]]:
        """(data set, rows of the global batch) for every step of `epoch`; the same for the same seed."""
        if self._planned is None or self._planned[0] != epoch:
            self._planned = (epoch, batching.epoch_batches(self.train_sets, self.config.global_batch,
                                                           self.settings.sampler, self.settings.seed, epoch))
        return self._planned[1]

    # ----- evaluation (tracking.py) and checkpoints (checkpoints.py) -------------------------------------------
    def epoch_fraction(self) -> float:
        steps_in_epoch = self.epoch_lengths[self.state.epoch] if self.state.epoch < len(self.epoch_lengths) else 1
        return round(self.state.epoch + self.state.batch_in_epoch / steps_in_epoch, 4)

    def evaluate(self) -> dict[str, float]:
        started = time.perf_counter()
        metrics = self.tracker.evaluate(self.model)
        self.state.eval_seconds += time.perf_counter() - started
        return metrics

    def evaluate_and_track(self) -> dict[str, float]:
        metrics = self.evaluate()
        self.tracker.track(self.model, metrics, self.state, self.epoch_fraction())
        return metrics

    def save_checkpoint(self):
        self.state.scaler = self.scaler.state_dict() if self.scaler.is_enabled() else {}
        return self.store.save_checkpoint(self.state.step, self.model, self.optimizer, asdict(self.state),
                                          self.tracker.checkpoint_files())

    def save_final_checkpoint(self):
        """The end of training, written before anything else can go wrong: a checkpoint of this step (unless one
        exists) and the best weights so far, so `--resume` can finish the run from here."""
        self.tracker.save(self.state)
        folder = self.store.step_folder(self.state.step)
        if not (folder / "trainer_state.json").is_file():
            folder = self.save_checkpoint()
        distributed.barrier(self.context)
        return folder

    def resume(self) -> bool:
        """Continue from the newest checkpoint; UserError when it is damaged, comes from another base model, or
        its resume key differs from this run's (the flag is named)."""
        latest = self.store.latest()
        if latest is None:
            return False
        step, folder = latest
        saved = self.store.restore(folder, self.model, self.optimizer)
        try:
            self.state = RunState(**saved)
        except TypeError:
            raise UserError(f"{folder / 'trainer_state.json'} does not describe a run of this version; "
                            "start without --resume (or use --overwrite)") from None
        if self.state.base and self.state.base != self.settings.base:
            raise UserError(f"--resume: {folder} continues a run from base {self.state.base!r}, not "
                            f"{self.settings.base!r}; give the same --base, or start over with --overwrite")
        for key, now in self.config.resume_key().items():
            before = self.state.plan.get(key, now)
            if before != now:
                raise UserError(f"--resume: {key} changed since {folder} ({before} -> {now}); a resumed run must "
                                "continue the same training: give the original setting, or start over with --overwrite")
        if self.state.scaler and self.scaler.is_enabled():
            self.scaler.load_state_dict(self.state.scaler)
        self.tracker.restore(self.model, folder, self.state)
        self.echo(f"resumed from {folder} (step {step})")
        return True

    def finish_weights(self) -> int:
        return self.tracker.finish(self.model, self.state)

    # ----- the step ------------------------------------------------------------------------------------------
    def forward_backward(self, batch: Batch) -> torch.Tensor:
        """This process's loss of the batch (detached), with gradients accumulated. The backward runs on
        loss · weight, this process's share under torchrun (losses.loss_function); also when the loss is not
        finite (its update is then skipped on the device, see `step`)."""
        loss_of, weight = loss_function(batch, self.config, self.context)
        encoder = self.ddp or self.encoder

        def scaled(loss):
            return self.scaler.scale(loss * weight)

        if batch.mini_batches is not None:
            no_sync = self.ddp.no_sync if self.ddp is not None else contextlib.nullcontext
            return gradcache.cached_forward_backward(
                lambda features: encoder(EncoderInput([features]))[0], batch.mini_batches, loss_of, self.autocast,
                scale_loss=scaled, no_sync=no_sync)
        with self.autocast:
            embeddings = encoder(batch.columns)
        loss = loss_of(embeddings)
        scaled(loss).backward()
        return loss.detach()

    def bad_step(self, loss: torch.Tensor, grad_norm: torch.Tensor) -> torch.Tensor:
        """Whether the step must be skipped, as a boolean on the device: its loss is not finite on some process
        (or, without a GradScaler, which handles fp16 overflow itself, its gradient norm is not finite)."""
        bad = ~torch.isfinite(loss)
        if not self.scaler.is_enabled():
            bad = bad | ~torch.isfinite(grad_norm)
        if self.context.enabled:  # every process skips the same steps
            flag = bad.to(torch.int32).reshape(1)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            bad = flag[0].bool()
        return bad

    def step(self, batch: Batch) -> float:
        """One optimiser step on a batch already on the device; nothing is read back from it (the loss and the
        skipped steps are counted there, health.py). Returns the learning rate used."""
        settings = self.settings
        lr = settings.lr * optim.lr_multiplier(self.state.step, self.total_steps, self.warmup)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss = self.forward_backward(batch)
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), settings.max_grad_norm)
        bad = self.bad_step(loss, grad_norm)
        if self.scaler.is_enabled():  # fp16: the fused AdamW gets the scaler's overflow flag, on the device
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            optim.step_unless(self.optimizer, bad)
        self.optimizer.zero_grad(set_to_none=True)
        self.health.record(self.state.step, loss, bad, grad_norm)
        return lr

    def read_health(self, log_lr: float | None = None, final: bool = False) -> None:
        """Read what the steps left on the device (health.py; on a GPU the loop's only synchronisation): report
        newly skipped steps, stop after max_bad_steps in a row (naming the last good checkpoint), and at logging
        steps (log_lr given) or at the end log the mean loss of the finite steps since the last log."""
        logging = log_lr is not None or final
        state, reading = self.state, self.health.read(reset_window=logging)
        state.bad_steps, state.finite_steps = reading.in_a_row, reading.finite
        if reading.skipped > self.skips_reported:
            self.echo(f"warning: {reading.skipped - self.skips_reported} step(s) up to step {state.step} skipped: the "
                      "loss was NaN/inf; the weights were not updated")
            self.skips_reported = reading.skipped
        if reading.stopped_at is not None:
            kept = self.store.latest()
            where = f"; the last good checkpoint is {kept[1]}" if kept else ""
            raise TrainingStopped(f"the loss was NaN/inf for {self.settings.max_bad_steps} steps in a row at step "
                                  f"{reading.stopped_at}{where}; lower --lr or use --precision fp32")
        if logging and reading.mean_loss is not None:
            self.shown_loss = reading.mean_loss
            entry = {"step": state.step, "epoch": self.epoch_fraction(), "loss": reading.mean_loss,
                     "grad_norm": reading.mean_grad_norm, "skipped_steps": reading.skipped}
            self.store.log(entry if log_lr is None else {**entry, "lr": log_lr})

    # ----- the loop ------------------------------------------------------------------------------------------
    def run(self, progress=None, step_hook=None, stop: StopSignals | None = None) -> None:
        """Train to the end (or --max-steps). A stop signal (see stop_signals) is acted on at a step boundary:
        a checkpoint is saved and TrainingStopped raised. progress: an embedder.progress.Progress; the loop's own
        lines (evaluations) go through its write()."""
        echoes = (self.echo, self.tracker.echo)
        if progress is not None and self.context.is_main:
            self.echo = self.tracker.echo = progress.write
        try:
            self._run(progress, step_hook, stop or StopSignals())
        finally:
            self.echo, self.tracker.echo = echoes

    def _run(self, progress, step_hook, stop: StopSignals) -> None:
        settings, state = self.settings, self.state
        self.model.train()
        self.health = StepHealth(self.device, settings.max_bad_steps, state.bad_steps, state.finite_steps)
        self.skips_reported, self.shown_loss = 0, None
        with stop.deferred():
            while state.epoch < settings.epochs and state.step < self.total_steps:
                batches = self.epoch_batches(state.epoch)
                while state.batch_in_epoch < len(batches) and state.step < self.total_steps:
                    set_index, rows = batches[state.batch_in_epoch]
                    started = time.perf_counter()
                    batch = collate(self.train_sets[set_index], rows, self.encoder, self.prompt_lengths,
                                    self.context, settings.mini_batch_size).to(self.device)
                    lr = self.step(batch)
                    state.step_seconds += time.perf_counter() - started
                    state.pairs += len(rows)
                    state.step += 1
                    state.batch_in_epoch += 1
                    if step_hook is not None:
                        step_hook(state.step)
                    if state.step % settings.logging_steps == 0:
                        self.read_health(log_lr=lr)
                    if progress is not None:
                        progress.update(state.step, self.shown_loss, self.epoch_fraction())
                    at_epoch_end = state.batch_in_epoch == len(batches)
                    at_run_end = state.step == self.total_steps  # --max-steps may stop mid-epoch: score that model too
                    if at_epoch_end or at_run_end:
                        self.tracker.epoch_end(self.model, state)
                    if self.tracker.evaluators and (at_epoch_end or at_run_end
                                                    or (settings.eval_steps and state.step % settings.eval_steps == 0)):
                        self.read_health()
                        self.evaluate_and_track()
                        if self.tracker.out_of_patience(state, settings.patience, self.device):
                            state.epoch, state.batch_in_epoch = settings.epochs, 0  # the run is over
                            break
                    if at_epoch_end:
                        state.epoch, state.batch_in_epoch = state.epoch + 1, 0
                    if settings.save_steps and state.step % settings.save_steps == 0:
                        self.read_health()
                        if not state.bad_steps:
                            self.save_checkpoint()  # never right after a skipped (non-finite) step
                    if distributed.broadcast_flag(bool(stop.requested), self.context, self.device):
                        self.read_health()
                        folder = self.save_checkpoint()
                        raise TrainingStopped(f"interrupted at step {state.step} ({stop.requested or 'on rank 0'}): "
                                              f"checkpoint saved to {folder}; continue with --resume")
                    if at_epoch_end:
                        break
        self.read_health(final=True)
        self.model.eval()


__all__ = ["RunState", "Trainer", "TrainingStopped"]
