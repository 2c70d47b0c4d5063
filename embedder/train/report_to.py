"""`--report-to tensorboard|trackio`: the training log as TensorBoard events or trackio logs, to watch a run as ST
users watch theirs (HF Trainer's `report_to`).

Every row the run logs to training_log.jsonl (checkpoints.py `RunStore.log`) becomes scalars at its step:
    train/loss, train/learning_rate, train/grad_norm, train/skipped_steps   at logging steps (every 10)
    eval/<metric>                                                            at evaluation steps, every metric of
                                                                             every set and Matryoshka dim
The events are written while the run trains into `<output>.checkpoints/runs/<time>_<host>/` (the start-up report
prints the `tensorboard --logdir` command; the output folder itself appears only when it is complete), and are
copied into the model folder's `runs/` with the model (ST loads only the modules that modules.json lists).
trackio keeps its logs in its own local database (TRACKIO_DIR, by default ~/.cache/huggingface/trackio), as with HF
Trainer: project = the output folder's name, run = <time>_<host>, config = the run's settings; `trackio show`
opens it.
"""

from __future__ import annotations

import contextlib
import io
import math
import shutil
import socket
import time
from pathlib import Path

RUNS_FOLDER = "runs"
TRAIN_KEYS = {"loss": "train/loss", "lr": "train/learning_rate", "grad_norm": "train/grad_norm",
              "skipped_steps": "train/skipped_steps"}


def run_name() -> str:
    return f"{time.strftime('%b%d_%H-%M-%S')}_{socket.gethostname()}"


def scalars(row: dict) -> dict[str, float]:
    """The finite numbers of a logged row under their reported names (train/…, eval/…)."""
    return {TRAIN_KEYS.get(key, f"eval/{key}"): value for key, value in row.items()
            if key not in ("step", "epoch") and isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value)}


class TensorBoardReport:
    """A listener of RunStore.log that writes each row's numbers as scalars (see the module docstring)."""

    def __init__(self, runs: Path):
        from torch.utils.tensorboard import SummaryWriter  # the tensorboard extra (settings_check.py asks for it)
        self.runs = Path(runs)
        self.folder = self.runs / run_name()
        self.writer = SummaryWriter(log_dir=str(self.folder))
        self.hint = f"TensorBoard: tensorboard --logdir {self.runs} (copied into the model's runs/ at the end)"

    def __call__(self, row: dict) -> None:
        for name, value in scalars(row).items():
            self.writer.add_scalar(name, value, global_step=row.get("step", 0))
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()

    def copy_into(self, folder: Path) -> None:
        """The events so far into `folder`/runs (a staging model folder)."""
        self.writer.flush()
        shutil.copytree(self.runs, Path(folder) / RUNS_FOLDER, dirs_exist_ok=True)


class TrackioReport:
    """A listener of RunStore.log that logs each row's numbers to trackio (see the module docstring); trackio's own
    console banners are kept off embedder's output."""

    def __init__(self, project: str, config: dict):
        import trackio  # the trackio extra (settings_check.py asks for it)
        self.trackio, self.project, self.name = trackio, project, run_name()
        with contextlib.redirect_stdout(io.StringIO()):
            trackio.init(project=project, name=self.name, config=config, embed=False, auto_log_cpu=False,
                         auto_log_gpu=False, capture_console=False)
        self.hint = f"trackio: trackio show --project {project!r} (run {self.name})"

    def __call__(self, row: dict) -> None:
        self.trackio.log(scalars(row), step=row.get("step", 0))

    def close(self) -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            self.trackio.finish()

    def copy_into(self, folder: Path) -> None:
        """Nothing: trackio's logs stay in its database."""


def reporter(report_to: str, checkpoint_dir: Path, project: str, config: dict):
    """The listener `--report-to` asks for, or None."""
    if report_to == "tensorboard":
        return TensorBoardReport(Path(checkpoint_dir) / RUNS_FOLDER)
    return TrackioReport(project, config) if report_to == "trackio" else None


__all__ = ["RUNS_FOLDER", "TensorBoardReport", "TrackioReport", "reporter"]
