"""`--report-to tensorboard`: the training log as TensorBoard events, to watch a run as ST users watch theirs (HF
Trainer's `report_to`).

Every row the run logs to training_log.jsonl (checkpoints.py `RunStore.log`) becomes scalars at its step:
    train/loss, train/learning_rate, train/grad_norm, train/skipped_steps   at logging steps (every 10)
    eval/<metric>                                                            at evaluation steps, every metric of
                                                                             every set and Matryoshka dim
The events are written while the run trains into `<output>.checkpoints/runs/<time>_<host>/` (the start-up report
prints the `tensorboard --logdir` command; the output folder itself appears only when it is complete), and are
copied into the model folder's `runs/` with the model (ST loads only the modules that modules.json lists).
"""

from __future__ import annotations

import math
import shutil
import socket
import time
from pathlib import Path

RUNS_FOLDER = "runs"
TRAIN_KEYS = {"loss": "train/loss", "lr": "train/learning_rate", "grad_norm": "train/grad_norm",
              "skipped_steps": "train/skipped_steps"}


class TensorBoardReport:
    """A listener of RunStore.log that writes each row's numbers as scalars (see the module docstring)."""

    def __init__(self, runs: Path):
        from torch.utils.tensorboard import SummaryWriter  # the tensorboard extra (settings_check.py asks for it)
        self.runs = Path(runs)
        self.folder = self.runs / f"{time.strftime('%b%d_%H-%M-%S')}_{socket.gethostname()}"
        self.writer = SummaryWriter(log_dir=str(self.folder))

    def __call__(self, row: dict) -> None:
        step = row.get("step", 0)
        for key, value in row.items():
            if key in ("step", "epoch") or not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            if math.isfinite(value):
                self.writer.add_scalar(TRAIN_KEYS.get(key, f"eval/{key}"), value, global_step=step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()

    def copy_into(self, folder: Path) -> None:
        """The events so far into `folder`/runs (a staging model folder)."""
        self.writer.flush()
        shutil.copytree(self.runs, Path(folder) / RUNS_FOLDER, dirs_exist_ok=True)


def reporter(report_to: str, checkpoint_dir: Path) -> TensorBoardReport | None:
    return TensorBoardReport(Path(checkpoint_dir) / RUNS_FOLDER) if report_to == "tensorboard" else None


__all__ = ["RUNS_FOLDER", "TensorBoardReport", "reporter"]
