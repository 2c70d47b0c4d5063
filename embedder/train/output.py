"""The run's output folder: checked before anything is loaded, held while the run works, replaced only as claimed.

- `check_output(config)`: every check of the output location that does not need the model (embedder/files.py's
  path checks against the run's inputs; what the folder holds against --overwrite and --resume; the checkpoints of
  an earlier run).
- `hold_output(config)`: from after those checks to the end of the run, the exclusive lock on the output
  (embedder/ownership.py), so a second run on the same --output is refused naming this one's pid. Under the lock
  the checks run again (another run may have finished in between), the staging folders that killed runs left
  beside the output and in its checkpoint folder are removed, and the `Claim` is taken: what the final swap may
  replace (nothing, an empty folder, or the model folder --overwrite/--resume allow).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from .. import files
from ..data import specs as data_specs
from ..errors import UserError
from ..model.st_format import is_model_folder
from ..ownership import Claim, OutputLock, refuse_if_held, remove_stale_staging
from . import checkpoints
from .config import TrainConfig


def run_inputs(config: TrainConfig) -> list[tuple[str, str]]:
    """The files and folders this run reads, which no output may overwrite."""
    named = [("--train", spec) for spec in config.train] + [("--eval", spec) for spec in config.eval]
    inputs = [(flag, spec) for flag, spec in named if data_specs.is_file_spec(spec)]
    if os.path.exists(os.path.expanduser(config.base)):  # False, not an error, for a name the OS rejects
        inputs.append(("--base", config.base))
    return inputs


def check_output(config: TrainConfig, held: bool = False) -> None:
    """Every check of the output location that does not need the model: before anything is loaded (and again
    once this run holds the output's lock: held=True)."""
    out = Path(config.output)
    if _writes():  # under torchrun one process probes (probes of two would collide)
        inputs = run_inputs(config)
        files.check_output(out, "--output", inputs, siblings=("{name}.checkpoints", ".{name}.lock"))
        files.check_output(config.checkpoint_dir, "--output", inputs)
        if not held:  # another run at work there: said before what it has left there so far
            refuse_if_held(out, "--output")
    if out.is_dir() and any(out.iterdir()):
        if not is_model_folder(out):  # a run replaces a model folder (--overwrite, --resume), never other files
            raise UserError(f"--output {out} holds files but no model (no modules.json or config.json); a run only "
                            "replaces a model folder: move the files away or choose another --output")
        if not config.overwrite and not config.resume:
            raise UserError(f"--output {out} already holds a model; pass --overwrite to replace it or choose another "
                            "folder")
    found = checkpoints.list_checkpoints(config.checkpoint_dir)
    if config.resume and not found:
        raise UserError(f"--resume: no checkpoint in {config.checkpoint_dir}; start without --resume")
    if found and not config.resume and not config.overwrite:
        raise UserError(f"--output {out}: {config.checkpoint_dir} holds checkpoints of an earlier run; pass --resume "
                        "to continue it, or --overwrite to start over")


@contextlib.contextmanager
def hold_output(config: TrainConfig):
    """The output held for the run (module docstring); yields the Claim the final write must honour (None on the
    processes of a torchrun job that do not write)."""
    if not _writes():
        yield None
        return
    out = Path(config.output).expanduser()
    with OutputLock(out, "--output"):
        check_output(config, held=True)
        remove_stale_staging(out.parent, out.name)
        if config.checkpoint_dir.is_dir():
            remove_stale_staging(config.checkpoint_dir, "*")
        yield Claim.of(out)


def _writes() -> bool:
    return os.environ.get("RANK", "0") in ("0", "")  # under torchrun rank 0 writes


__all__ = ["check_output", "hold_output", "run_inputs"]
