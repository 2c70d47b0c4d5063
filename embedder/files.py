"""Where results go: every output location is checked before any work starts, so a run never fails at its end for
a reason it could have known at its start, and never destroys what it reads.

`check_output(path, flag, inputs, …)` refuses, with a UserError naming the flag and the fix:
- a path that names nothing (`''`, `.`, `..`) or that the OS will not create (a name too long, a forbidden
  character): the exact names the run will create beside the output — the output itself, its staging sibling
  `.NAME.tmp-XXXXXXXX`, and any extra sibling such as `NAME.checkpoints` — and its missing parent folders are
  created inside a hidden folder of the check's own in the nearest existing folder (the same file system), and
  removed with it, so the file system itself answers and nothing is ever made at the output's path;
- a location that cannot be written (the nearest existing folder is a file, or not writable; a file's folder
  must exist);
- an output that is one of the run's inputs (or another output), contains one, or would replace a file inside an
  input folder (a data file, the base model folder), compared by resolved path (symlinks followed) and, for an
  existing file, by (device, inode), so a hard link is the same file.
`check_free_space(path, needed, flag)` refuses a file system whose free space is below `needed` bytes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .errors import UserError
from .ownership import Claim, swap_in


def _existing_ancestor(path: Path) -> Path:
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    return parent


def _probe_names(path: Path, names: list[str], flag: str, shown: Path, ancestor: Path) -> None:
    """Create the folders along `path`'s parent and each sibling name inside a hidden folder of the run's own in
    `ancestor` (the nearest existing folder, so the same file system), then remove it: the OS rejects what it would
    reject at the end of the run, and a run killed meanwhile leaves nothing at `path` or beside it."""
    try:
        root = Path(tempfile.mkdtemp(prefix=".write-test-", dir=ancestor))
    except OSError as err:
        raise UserError(f"{flag} {shown}: cannot write in {ancestor} ({err.strerror}); choose another path") from None
    try:
        parent = root / path.parent.relative_to(ancestor) if path.parent != ancestor else root
        parent.mkdir(parents=True, exist_ok=True)
        for name in names:
            os.mkdir(parent / name)
    except OSError as err:
        raise UserError(f"{flag} {shown}: the file system refuses this path ({err.strerror}); "
                        "choose a shorter or plainer name") from None
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _refuse_inputs(path: Path, flag: str, inputs: list[tuple[str, str | Path]], shown: Path) -> None:
    resolved = path.resolve()
    for input_flag, input_path in inputs:
        source = Path(input_path).expanduser()
        source_resolved = source.resolve()
        same = source_resolved == resolved or resolved in source_resolved.parents  # is it, or holds it
        if not same and path.exists() and source_resolved in resolved.parents:
            same = True  # would replace a file inside an input folder (a model's config.json)
        if not same and path.is_file() and source.is_file():
            same = os.path.samefile(path, source)  # a hard link is the same file
        if same:
            raise UserError(f"{flag} {shown} would overwrite {input_flag} {input_path}, an input of this run; "
                            f"choose another {flag}")


def check_output(path: str | Path, flag: str, inputs: list[tuple[str, str | Path]] = (), *, is_file: bool = False,
                 siblings: tuple[str, ...] = ()) -> None:
    """UserError unless `path` can be written at the end of the run without harming an input (module docstring).
    siblings: extra names the run creates beside `path`, with {name} standing for its name."""
    try:
        _check_output(path, flag, inputs, is_file, siblings)
    except (OSError, RuntimeError) as err:  # even looking at the path fails: a name too long, a symlink loop…
        raise UserError(f"{flag} {path}: the file system refuses this path ({getattr(err, 'strerror', None) or err}); "
                        "choose a shorter or plainer name") from None


def _check_output(path, flag, inputs, is_file, siblings) -> None:
    shown = Path(path)
    path = Path(path).expanduser()
    name = path.name
    if name in ("", ".", ".."):  # Path already folds a trailing "/." into its parent
        raise UserError(f"{flag} {shown!s}: give a path that ends in a {'file' if is_file else 'folder'} name")
    if path.exists() and path.is_dir() == is_file:
        raise UserError(f"{flag} {shown} is a {'folder' if path.is_dir() else 'file'}; give a "
                        f"{'file' if is_file else 'folder'} path")
    if is_file and not path.parent.is_dir():
        raise UserError(f"{flag} {shown}: folder {path.parent} does not exist; create it or choose another path")
    ancestor = _existing_ancestor(path)
    if not ancestor.is_dir():
        raise UserError(f"{flag} {shown}: {ancestor} is a file, not a folder; choose another path")
    _refuse_inputs(path, flag, list(inputs), shown)
    _probe_names(path, [name, f".{name}.tmp-{'x' * 8}", *(s.format(name=name) for s in siblings)], flag, shown,
                 ancestor)


def check_free_space(path: str | Path, needed: int, flag: str) -> None:
    """UserError when the file system that will hold `path` has fewer than `needed` bytes free."""
    free = shutil.disk_usage(_existing_ancestor(Path(path).expanduser().absolute() / "x")).free
    if free < needed:
        raise UserError(f"{flag} {path}: {free / 2**20:,.0f} MiB free on its disk, this run writes up to "
                        f"{needed / 2**20:,.0f} MiB (model, checkpoints); free some space or choose another place")


def write_file_atomically(path: str | Path, text: str) -> None:
    """Write `text` to a temporary sibling, then rename it onto `path`: readers see the old file or the new one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def replace_parts(staging: Path, folder: Path, names: list[str]) -> None:
    """Move each `staging/name` that exists onto `folder/name`, settled (modes, fsync) first: a file by one
    os.replace, a folder by two renames (the old one into `staging`, removed with it, then the new one in). Called
    when everything is written, so a failure before it leaves `folder` as it was."""
    _settle_tree(staging)
    for name in names:
        new, old = staging / name, folder / name
        if not new.exists():
            continue
        if new.is_dir() and old.exists():
            os.rename(old, staging / f".replaced-{name}")
        os.replace(new, old)


def _settle_tree(folder: Path) -> None:
    """Give every file and folder the mode a plain open/mkdir gives under the umask (mkdtemp makes 0700 and
    safetensors 0600, which a serving process of another user could not read), and fsync them."""
    umask = os.umask(0)
    os.umask(umask)
    for root, _, files in os.walk(folder):
        os.chmod(root, 0o777 & ~umask)
        for name in files:
            path = os.path.join(root, name)
            os.chmod(path, 0o666 & ~umask)
            with open(path, "rb") as f:
                os.fsync(f.fileno())
        fd = os.open(root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomically(target: Path, fill, claim: Claim | None = None) -> None:
    """Call fill(staging_folder), settle the filled folder (modes, fsync), then swap it onto `target` in one step
    (embedder/ownership.py `swap_in`), replacing only what `claim` says was there when the run started (default:
    what is there now). Every file is in the staging folder before the swap; a failure or a kill at any point leaves
    `target` as it was or complete, and at most a hidden staging folder that the next run removes."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    claim = claim or Claim.of(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        fill(staging)
        _settle_tree(staging)
        swap_in(staging, claim)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


__all__ = ["check_free_space", "check_output", "replace_parts", "write_atomically", "write_file_atomically"]
