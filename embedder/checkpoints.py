"""Training checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint folder `step-{N}/` holds the model weights (model.safetensors, our parameter names), the optimiser
state (optimizer.pt, read back with weights_only=True), the RNG states (rng.pt) and trainer_state.json (step, data
position, best metric so far, scaler state). Each is written to a staging folder, fsynced and renamed
(`st_format.write_atomically`), so a killed run leaves only complete checkpoints. `best/` holds the weights of
the best evaluation so far, written the same way.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .st_format import write_atomically

_STEP = re.compile(r"^step-(\d+)$")


def model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu().clone() for k, v in model.state_dict().items()}


def rng_state() -> dict:
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def save_checkpoint(folder: Path, model, optimizer, state: dict, rng: dict | list[dict]) -> None:
    """rng: this process's rng_state(), or a list with one per process under torchrun."""
    def fill(staging: Path):
        save_file(model_state(model), str(staging / "model.safetensors"))
        torch.save(optimizer.state_dict(), staging / "optimizer.pt")
        torch.save(rng if isinstance(rng, list) else [rng], staging / "rng.pt")
        (staging / "trainer_state.json").write_text(json.dumps(state, indent=1), encoding="utf-8")

    write_atomically(folder, fill)


def save_weights(folder: Path, state_dict: dict[str, torch.Tensor], info: dict) -> None:
    def fill(staging: Path):
        save_file(state_dict, str(staging / "model.safetensors"))
        (staging / "info.json").write_text(json.dumps(info), encoding="utf-8")

    write_atomically(folder, fill)


def load_weights(folder: Path) -> tuple[dict[str, torch.Tensor], dict]:
    return load_file(str(folder / "model.safetensors")), json.loads((folder / "info.json").read_text())


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
    device = next(model.parameters()).device
    model.load_state_dict({k: v.to(device) for k, v in load_file(str(folder / "model.safetensors")).items()})
    optimizer.load_state_dict(torch.load(folder / "optimizer.pt", map_location=device, weights_only=True))
    states = torch.load(folder / "rng.pt", map_location="cpu", weights_only=True)
    rng = states[rank] if rank < len(states) else states[0]
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))


def prune(root: Path, keep: int | None) -> None:
    """Keep the newest `keep` checkpoints."""
    if not keep or keep <= 0:
        return
    for _, path in list_checkpoints(root)[:-keep]:
        shutil.rmtree(path, ignore_errors=True)
