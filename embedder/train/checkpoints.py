"""Training checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint folder `step-{N}/` holds the model weights (model.safetensors, our parameter names), the optimiser
state (optimizer.pt, read back with weights_only=True), the RNG states (rng.pt) and trainer_state.json (step, data
position, best metric so far, scaler state). Each is written to a staging folder, fsynced and renamed
(`st_format.write_atomically`), so a killed run leaves only complete checkpoints. `best/` holds the weights of
the best evaluation so far, written the same way.
"""

from __future__ import annotations

import errno
import json
import re
import shutil
import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file

from ..errors import UserError
from ..files import write_atomically
from ..model.st_format import WEIGHTS_FILE, save_tensors
from . import distributed

_STEP = re.compile(r"^step-(\d+)$")


def model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu().clone() for k, v in model.state_dict().items()}


def rng_state() -> dict:
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def save_checkpoint(folder: Path, model, optimizer, state: dict, rng: dict | list[dict],
                    extra: dict | None = None) -> None:
    """rng: this process's rng_state(), or a list with one per process under torchrun; extra: {file name: tensors}
    written beside the weights (the --average-epochs sum)."""
    def fill(staging: Path):
        save_tensors(model_state(model), staging / WEIGHTS_FILE)
        for name, tensors in (extra or {}).items():
            save_tensors(tensors, staging / name)
        torch.save(optimizer.state_dict(), staging / "optimizer.pt")
        torch.save(rng if isinstance(rng, list) else [rng], staging / "rng.pt")
        (staging / "trainer_state.json").write_text(json.dumps(state, indent=1), encoding="utf-8")

    _write(folder, fill, 3 * _weight_bytes(model.state_dict()))


def save_weights(folder: Path, state_dict: dict[str, torch.Tensor], info: dict) -> None:
    def fill(staging: Path):
        save_tensors(state_dict, staging / WEIGHTS_FILE)
        (staging / "info.json").write_text(json.dumps(info), encoding="utf-8")

    _write(folder, fill, _weight_bytes(state_dict))


def _weight_bytes(state_dict: dict) -> int:
    return sum(t.numel() * t.element_size() for t in state_dict.values())


def _write(folder: Path, fill, size: int) -> None:
    """write_atomically, with a full disk said in one line: the folder and the space it needs (the earlier
    checkpoints stay intact: nothing is replaced until the new one is complete)."""
    try:
        write_atomically(folder, fill)
    except OSError as err:
        if err.errno != errno.ENOSPC:
            raise
        raise OSError(errno.ENOSPC, f"no space left on the device for {folder}, which needs about "
                                    f"{size / 2**20:,.0f} MiB; free some space, then run the same command with "
                                    "--resume") from None


def load_weights(folder: Path, model) -> dict[str, torch.Tensor]:
    """The weights saved in `folder` by save_weights, checked against `model` (UserError when they do not fit)."""
    state = _read(folder / WEIGHTS_FILE, lambda path: load_file(str(path)))
    _check_fits(state, model, folder)
    return state


def _read(path: Path, reader):
    """reader(path), with any failure to read a damaged or tampered file turned into one UserError line."""
    try:
        with warnings.catch_warnings():  # torch.load warns about pickle protocols on stderr; the error says it all
            warnings.simplefilter("ignore")
            return reader(path)
    except Exception as err:  # safetensors, torch.load(weights_only=True) and json raise many kinds
        first = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise UserError(f"checkpoint file {path} is damaged ({first}); delete {path.parent} to resume from an "
                        "earlier checkpoint, or start over with --overwrite") from None


def _check_fits(state, model, folder: Path) -> None:
    expected = model.state_dict()
    if not isinstance(state, dict) or set(state) != set(expected) or any(
            not torch.is_tensor(state[k]) or state[k].shape != v.shape for k, v in expected.items()):
        raise UserError(f"checkpoint {folder} holds weights of another model; resume with the --base it was "
                        "trained from, or start over with --overwrite")


def list_checkpoints(root: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints, oldest first."""
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _STEP.match(path.name)
        if match and (path / "trainer_state.json").is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def load_checkpoint(folder: Path, model, optimizer, rank: int = 0) -> dict:
    """Restore model, optimiser and RNG from `folder`; returns the trainer state. Every file is checked before
    anything is restored: a damaged one, or one from another model, is a UserError."""
    device = next(model.parameters()).device
    weights = _read(folder / WEIGHTS_FILE, lambda path: load_file(str(path)))
    _check_fits(weights, model, folder)
    optimizer_state = _read(folder / "optimizer.pt",
                            lambda path: torch.load(path, map_location=device, weights_only=True))
    states = _read(folder / "rng.pt", lambda path: torch.load(path, map_location="cpu", weights_only=True))
    rng = states[rank] if isinstance(states, list) and rank < len(states) else \
        states[0] if isinstance(states, list) and states else None
    if not isinstance(rng, dict) or not _is_rng_state(rng.get("torch")) or \
            not all(_is_rng_state(t) for t in rng.get("cuda", [])):
        raise UserError(f"checkpoint file {folder / 'rng.pt'} holds no random-number state; delete {folder} to "
                        "resume from an earlier checkpoint, or start over with --overwrite")
    state = _read(folder / "trainer_state.json", lambda path: json.loads(path.read_text(encoding="utf-8")))
    if not isinstance(state, dict) or not all(isinstance(state.get(k), int) and state[k] >= 0
                                              for k in ("step", "epoch", "batch_in_epoch")):
        raise UserError(f"checkpoint file {folder / 'trainer_state.json'} is damaged (no step/epoch position); "
                        f"delete {folder} to resume from an earlier checkpoint, or start over with --overwrite")
    model.load_state_dict({k: v.to(device) for k, v in weights.items()})
    try:
        optimizer.load_state_dict(optimizer_state)
    except (ValueError, KeyError, TypeError, RuntimeError, AttributeError) as err:
        raise UserError(f"checkpoint file {folder / 'optimizer.pt'} does not fit this model's optimiser "
                        f"({str(err)[:100]}); start over with --overwrite") from None
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return state


def _is_rng_state(value) -> bool:
    return torch.is_tensor(value) and value.dtype == torch.uint8 and value.dim() == 1


def clear(root: Path) -> None:
    """Remove an earlier run's checkpoints, best weights and log from `root` (a fresh run with --overwrite)."""
    if not root.is_dir():
        return
    for _, path in list_checkpoints(root):
        shutil.rmtree(path, ignore_errors=True)
    shutil.rmtree(root / "best", ignore_errors=True)
    (root / "training_log.jsonl").unlink(missing_ok=True)


def prune(root: Path, keep: int | None) -> None:
    """Keep the newest `keep` checkpoints."""
    if not keep or keep <= 0:
        return
    for _, path in list_checkpoints(root)[:-keep]:
        shutil.rmtree(path, ignore_errors=True)


def needed_disk_space(model, config, total_steps: int) -> int:
    """Bytes this run may hold on disk at once: checkpoints (weights + AdamW's two moments = 3 x the weights; the
    newest k plus one being written), the best weights, and the final model beside any old one, plus 5 %."""
    weight_bytes = sum(t.numel() * 4 for t in model.state_dict().values())
    saves = (total_steps // config.save_steps if config.save_steps else 0) + 1  # + the end-of-training checkpoint
    held = min(saves, (config.save_total_limit or saves) + 1)
    return int(weight_bytes * (3 * held + 1 + 1) * 1.05) + (16 << 20)


class RunStore:
    def __init__(self, root: Path, save_total_limit: int | None = None,
                 context: distributed.Context = distributed.Context()):
        self.root, self.save_total_limit, self.context = Path(root), save_total_limit, context
        self.log_path = self.root / "training_log.jsonl"
        self.log_rows: list[dict] = []
        self.listeners: list = []  # called with each logged row (report_to.py)

    def log(self, row: dict) -> None:
        if not self.context.is_main:
            return
        self.log_rows.append(row)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        for listener in self.listeners:
            listener(row)

    def step_folder(self, step: int) -> Path:
        return self.root / f"step-{step}"

    def save_checkpoint(self, step: int, model, optimizer, state: dict, extra: dict | None = None) -> Path:
        """A checkpoint of `step`, then the oldest pruned past --save-total-limit (every process calls this)."""
        folder = self.step_folder(step)
        rng = rng_state()
        if self.context.enabled:  # every process's dropout RNG, so a resumed run draws the same masks
            states = [None] * self.context.world_size
            torch.distributed.all_gather_object(states, rng)
            rng = states
        if self.context.is_main:
            save_checkpoint(folder, model, optimizer, state, rng, extra)
            prune(self.root, self.save_total_limit)
        distributed.barrier(self.context)
        return folder

    def save_best(self, weights: dict, step: int, metric: float) -> None:
        if self.context.is_main:
            save_weights(self.root / "best", weights, {"step": step, "metric": metric})

    def load_best(self, model) -> dict | None:
        best = self.root / "best"
        return load_weights(best, model) if (best / WEIGHTS_FILE).is_file() else None

    def load_extra(self, folder: Path, name: str) -> dict[str, torch.Tensor]:
        """A tensor file a checkpoint holds beside the weights (UserError when it is missing or damaged)."""
        return _read(folder / name, lambda path: load_file(str(path)))

    def latest(self) -> tuple[int, Path] | None:
        found = list_checkpoints(self.root)
        return found[-1] if found else None

    def restore(self, folder: Path, model, optimizer) -> dict:
        """Model, optimiser and RNG from a checkpoint; its trainer state; the log cut back to its step."""
        state = load_checkpoint(folder, model, optimizer, self.context.rank)
        if self.log_path.is_file() and self.context.is_main:  # drop log rows written after this checkpoint
            rows = [json.loads(line) for line in self.log_path.read_text(encoding="utf-8").split("\n") if line]
            self.log_rows = [r for r in rows if r.get("step", 0) <= state["step"]]
            self.log_path.write_text("".join(json.dumps(r) + "\n" for r in self.log_rows), encoding="utf-8")
        return state

    def clear(self) -> None:
        """An earlier run's checkpoints, best weights and log (a fresh start with --overwrite)."""
        if self.context.is_main:
            clear(self.root)

    def where(self) -> str:
        """Where the last complete checkpoint is, said for a message."""
        kept = self.latest()
        return f"the last complete checkpoint is {kept[1]} (continue with --resume)" if kept else \
            "no checkpoint was written"
