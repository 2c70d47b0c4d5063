"""Training progress a person can see, wherever the output goes.

- stderr is a terminal: a tqdm bar (step, loss, epoch); every other line of the run (the evaluations) is printed
  with tqdm.write, above the bar, never over it.
- stdout is not a terminal (a log file, a CI job, nohup): a plain line every `every_steps` steps or
  `every_seconds` seconds, whichever comes first, and at the last step:

      step 40/150 (epoch 1.33): loss 0.8123, 10.5 pairs/s, elapsed 1m20s, ETA 3m40s

  The loss is the mean of the last logging window (`logging_steps`; read back from the device only then).

  pairs/s = batch size x steps done in this process / seconds since its first step; ETA = the steps left at that
  rate. Both can hold at once (stdout to a file, stderr to a terminal).
"""

from __future__ import annotations

import platform
import sys
import time

import numpy as np
import torch

from ..data import batching
from .losses import ONE_WAY


def echo_lines(*args, err: bool = False, **kwargs) -> None:
    """The default output: stdout, or stderr for warnings (click.echo's signature)."""
    print(*args, file=sys.stderr if err else sys.stdout, flush=True)


def quiet(*args, **kwargs):
    """The output of processes other than rank 0 under torchrun: nothing."""


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


class Progress:
    def __init__(self, total: int, initial: int, batch_size: int, echo=print, enabled: bool = True,
                 every_steps: int = 10, every_seconds: float = 30.0):
        self.total, self.initial, self.batch_size, self.echo = total, initial, batch_size, echo
        self.every_steps, self.every_seconds = every_steps, every_seconds
        self.bar = None
        self.lines = enabled and not sys.stdout.isatty()
        if enabled and sys.stderr.isatty():
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, initial=initial, desc="training", unit="step")
        self.started = self.last_line = time.monotonic()
        self.last_step = initial

    def write(self, *args, err: bool = False, **kwargs) -> None:
        """The run's other lines: above the bar when there is one."""
        if self.bar is not None:
            from tqdm.auto import tqdm
            tqdm.write(" ".join(str(a) for a in args), file=sys.stderr if err else sys.stdout)
        elif err:
            self.echo(*args, err=True, **kwargs)
        else:
            self.echo(*args, **kwargs)

    def update(self, step: int, loss: float | None, epoch: float) -> None:
        """loss: the mean of the last logging window (read from the device only at logging steps); None before."""
        shown = "-" if loss is None else f"{loss:.4f}"
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix(loss=shown, epoch=epoch)
        now = time.monotonic()
        due = step - self.last_step >= self.every_steps or now - self.last_line >= self.every_seconds \
            or step == self.total
        if self.lines and due:
            elapsed = now - self.started
            rate = (step - self.initial) / elapsed if elapsed > 0 else 0.0
            eta = (self.total - step) / rate if rate > 0 else 0.0
            self.echo(f"step {step}/{self.total} (epoch {epoch:.2f}): loss {shown}, "
                      f"{rate * self.batch_size:.1f} pairs/s, elapsed {_clock(elapsed)}, ETA {_clock(eta)}")
            self.last_step, self.last_line = step, now

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def device_name(device) -> str:
    """What the run computed on, for the start-up report and the card: the GPU's name, or the CPU's model name
    (from /proc/cpuinfo on Linux) and the threads torch uses."""
    if getattr(device, "type", str(device)) == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            name = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), name)
    except OSError:
        pass
    return f"CPU: {name}, {torch.get_num_threads()} threads"


def column_roles(columns) -> str:
    """Which column is the anchor, the positive and each negative, e.g. "anchor = question, positive = context"."""
    roles = ["anchor", "positive", *(f"negative {i}" for i in range(1, len(columns) - 1))]
    return ", ".join(f"{role} = {column}" for role, column in zip(roles, columns))


def startup_report(model, config, train_sets, trainer) -> list[str]:
    """What the settings really mean, in plain lines: the resolved configuration (embedder/train/config.py) and what
    it implies."""
    settings = config.settings
    pairs = sum(len(ds) for ds in train_sets)
    B = settings.batch_size
    steps_per_epoch = trainer.epoch_lengths[0]
    dup = np.mean([batching.duplicate_share(ds.text_ids, B) for ds in train_sets])
    passages = [ids for ds in train_sets for col in ds.ids[1:] for ids in col]
    truncated = np.mean([len(ids) >= config.max_seq_length for ids in passages]) if passages else 0.0
    in_batch = (config.global_batch if config.gather_across_devices else B) - 1
    lines = [
        f"base model: {settings.base} ({model.embedding_dimension} dims, max_seq_length {config.max_seq_length}, "
        f"precision {config.precision} on {device_name(trainer.device)}; {config.precision_reason})",
        f"training pairs: {pairs} in {len(train_sets)} set(s); columns: " + column_roles(train_sets[0].columns),
        f"steps: {steps_per_epoch} per epoch x {settings.epochs} epochs = {trainer.total_steps} optimiser steps "
        f"(batch {B}, warmup {trainer.warmup})",
        f"negatives per query: {config.negatives_per_query} ({in_batch} in-batch"
        + (f" + {config.negatives_per_query - in_batch} hard)" if config.hard_negative_columns else ")"),
        f"random batches of {B} holding a repeated text: {dup:.1%}; sampler: {settings.sampler}"
        + (", duplicates masked in the loss" if settings.mask_duplicates else "")
        + (f", negatives above the positive + {settings.mask_false_negatives:g} masked (false negatives)"
           if settings.mask_false_negatives is not None else ""),
        f"passages truncated at max_seq_length {config.max_seq_length}: {truncated:.1%}",
        f"scale {settings.scale:g} = temperature {1 / settings.scale:.3g}; lr {settings.lr:g}, linear decay, "
        f"max_grad_norm {settings.max_grad_norm:g}",
        "loss: " + (f"Matryoshka over dims {list(config.dims)} of MNRL" if config.dims else "MNRL")
        + ("" if settings.directions == ONE_WAY else
           f" with {' + '.join(settings.directions)} ({settings.partition_mode.replace('_', ' ')} softmax)"),
    ]
    if config.select_metric:
        dims = ", ".join("full" if d is None else str(d) for d in config.eval_dims)
        lines.append(f"best checkpoint chosen by {config.select_metric}; evaluated at dims {dims}"
                     + (f"; a run stops after {settings.patience} evaluations without a better one (--patience)"
                        if settings.patience else ""))
    if settings.soup > 1:
        seeds = ", ".join(map(str, settings.soup_seeds))
        lines.append(f"soup: {settings.soup} runs one after another (seeds {seeds}), each choosing its own best "
                     "step; the saved model is the average of their weights")
    if config.query_prompt or config.passage_prompt or config.prompt_source:
        lines.append(f"prompts: query {config.query_prompt!r}, passage {config.passage_prompt!r} "
                     f"({config.prompt_source})")
    if config.world_size > 1:
        lines.append(f"torchrun: {config.world_size} processes x batch {B} = global batch {config.global_batch}; "
                     f"negatives gathered across devices: {config.gather_across_devices}")
    return lines


__all__ = ["device_name", "Progress", "startup_report"]
