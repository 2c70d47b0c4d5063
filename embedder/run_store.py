"""What a run keeps on disk while it trains: checkpoints, the best weights so far, and the training log.

All of it lives in `NAME.checkpoints/` beside the output folder (`TrainConfig.checkpoint_dir`):

    step-{N}/              a resumable checkpoint (embedder/checkpoints.py says what it holds)
    best/                  the weights of the best evaluation so far (with --save-steps, or at the end)
    training_log.jsonl     one JSON row per logging step and per evaluation

Only rank 0 writes; under torchrun every process's RNG state is gathered into each checkpoint, so a resumed run
draws the same dropout masks on every process.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from . import checkpoints, distributed


class RunStore:
    def __init__(self, root: Path, save_total_limit: int | None = None,
                 context: distributed.Context = distributed.Context()):
        self.root, self.save_total_limit, self.context = Path(root), save_total_limit, context
        self.log_path = self.root / "training_log.jsonl"
        self.log_rows: list[dict] = []

    def log(self, row: dict) -> None:
        if not self.context.is_main:
            return
        self.log_rows.append(row)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")

    def step_folder(self, step: int) -> Path:
        return self.root / f"step-{step}"

    def save_checkpoint(self, step: int, model, optimizer, state: dict) -> Path:
        """A checkpoint of `step`, then the oldest pruned past --save-total-limit (every process calls this)."""
        folder = self.step_folder(step)
        rng = checkpoints.rng_state()
        if self.context.enabled:  # every process's dropout RNG, so a resumed run draws the same masks
            states = [None] * self.context.world_size
            torch.distributed.all_gather_object(states, rng)
            rng = states
        if self.context.is_main:
            checkpoints.save_checkpoint(folder, model, optimizer, state, rng)
            checkpoints.prune(self.root, self.save_total_limit)
        distributed.barrier(self.context)
        return folder

    def save_best(self, weights: dict, step: int, metric: float) -> None:
        if self.context.is_main:
            checkpoints.save_weights(self.root / "best", weights, {"step": step, "metric": metric})

    def load_best(self, model) -> dict | None:
        best = self.root / "best"
        return checkpoints.load_weights(best, model) if (best / "model.safetensors").is_file() else None

    def latest(self) -> tuple[int, Path] | None:
        found = checkpoints.list_checkpoints(self.root)
        return found[-1] if found else None

    def restore(self, folder: Path, model, optimizer) -> dict:
        """Model, optimiser and RNG from a checkpoint; its trainer state; the log cut back to its step."""
        state = checkpoints.load_checkpoint(folder, model, optimizer, self.context.rank)
        if self.log_path.is_file() and self.context.is_main:  # drop log rows written after this checkpoint
            rows = [json.loads(line) for line in self.log_path.read_text(encoding="utf-8").splitlines() if line]
            self.log_rows = [r for r in rows if r.get("step", 0) <= state["step"]]
            self.log_path.write_text("".join(json.dumps(r) + "\n" for r in self.log_rows), encoding="utf-8")
        return state

    def clear(self) -> None:
        """An earlier run's checkpoints, best weights and log (a fresh start with --overwrite)."""
        if self.context.is_main:
            checkpoints.clear(self.root)

    def where(self) -> str:
        """Where the last complete checkpoint is, said for a message."""
        kept = self.latest()
        return f"the last complete checkpoint is {kept[1]} (continue with --resume)" if kept else \
            "no checkpoint was written"


__all__ = ["RunStore"]
