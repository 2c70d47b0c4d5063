"""A run's hold on its output folder, from its start to the final swap, so that nothing another process (or the
user) puts there while it works is lost.

- `OutputLock(target)`: an exclusive lock (`flock`) on `.NAME.lock` beside the output, taken before the first
  step and released at the end; the file holds the owner's pid, so a second run on the same output is refused in
  one line naming it. The OS drops the lock when its process dies, however it dies, so a lock file left by a killed
  run never blocks the next one. While it holds the lock a run may remove the staging folders
  (`.NAME.tmp-*`, `.NAME.old-*`) that killed runs left beside the output: no live run owns them.
- `Claim`: what the output was when the run started (absent, or the folder with this (device, inode)): the only
  thing the run is entitled to replace at its end.
- `swap_in(staging, target, claim)`: the final write. Absent at the start: `renameat2(RENAME_NOREPLACE)` moves the
  complete staging folder in, and fails if anything appeared at the target meanwhile. Present: the target must
  still be the claimed folder, and `renameat2(RENAME_EXCHANGE)` swaps the two in one step, so the target is the
  old complete folder or the new complete one at every instant, never missing; the old one is removed after. Where
  the OS has no renameat2 (not Linux, or a file system without it) the same checks run just before two plain
  renames. A target that is not what was claimed raises `OutputChanged` and is left as it is.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

try:
    import fcntl
except ImportError:  # Windows: no flock; the claim checks at the swap still hold
    fcntl = None

_AT_FDCWD, _RENAME_NOREPLACE, _RENAME_EXCHANGE = -100, 1, 2
_LIBC = ctypes.CDLL(None, use_errno=True) if os.name == "posix" else None


class OutputChanged(OSError):
    """The output is not what the run claimed at its start: something else wrote there while it worked."""

    def __init__(self, target: Path):
        super().__init__(errno.EEXIST, "it was written by something else while this run worked, and is left as it is",
                         str(target))


def lock_path(target: Path) -> Path:
    return target.parent / f".{target.name}.lock"


def refuse_if_held(target: str | Path, flag: str = "--output") -> None:
    """UserError naming the owner's pid when another process holds `target`'s lock; creates nothing (a run checks
    this first, before any other check of its output, and takes the lock itself only once every check passed)."""
    path = lock_path(Path(target).expanduser())
    if fcntl is None or not path.is_file():
        return
    with open(path, encoding="utf-8") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            _refuse(target, flag, file.read().strip())
        fcntl.flock(file, fcntl.LOCK_UN)


def _refuse(target, flag: str, owner: str):
    raise UserError(f"{flag} {target} is being written by another run (pid {owner or 'unknown'}); wait for it to "
                    f"finish or choose another {flag}") from None


class OutputLock:
    """The exclusive hold on `target` (module docstring). Use as a context manager; `flag` names the output in the
    refusal line."""

    def __init__(self, target: str | Path, flag: str = "--output"):
        self.target, self.flag, self.file, self.created = Path(target).expanduser(), flag, None, []

    def __enter__(self) -> OutputLock:
        if fcntl is None:
            return self
        path = lock_path(self.target)
        self.created = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
        path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            self.file = open(path, "a+", encoding="utf-8")
            try:
                fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                self.file.seek(0)
                owner = self.file.read().strip()
                self.file.close()
                self.file = None
                _refuse(self.target, self.flag, owner)
            held = os.fstat(self.file.fileno())
            if _identity(path) == (held.st_dev, held.st_ino):
                break  # locked the file that is at the path (an owner that just left unlinks its file)
            self.file.close()
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"{os.getpid()}\n")
        self.file.flush()
        return self

    def __exit__(self, *exc) -> None:
        if self.file is not None:
            try:
                lock_path(self.target).unlink(missing_ok=True)  # still ours: removed before the lock is let go
            finally:
                self.file.close()  # releases the flock
                self.file = None
            for folder in self.created:  # the folders the lock made, unless the run has put something in them
                try:
                    folder.rmdir()
                except OSError:
                    break


def remove_stale_staging(folder: Path, name: str) -> list[Path]:
    """Remove the staging folders `.NAME.tmp-*` and `.NAME.old-*` in `folder` (call only while holding the lock of
    the output they belong to); returns what was removed."""
    removed = []
    for stale in sorted(folder.glob(f".{name}.tmp-*")) + sorted(folder.glob(f".{name}.old-*")):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
            removed.append(stale)
    return removed


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


@dataclass(frozen=True)
class Claim:
    """What a run may replace at `target`: nothing (the target was absent) or the folder of this identity."""
    target: Path
    identity: tuple[int, int] | None

    @classmethod
    def of(cls, target: str | Path) -> Claim:
        target = Path(target).expanduser()
        return cls(target, _identity(target))


def _renameat2(source: Path, target: Path, flags: int) -> bool:
    """renameat2(2); False where the OS or the file system does not have it."""
    function = getattr(_LIBC, "renameat2", None) if _LIBC is not None else None
    if function is None:
        return False
    if function(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    if code in (errno.EEXIST, errno.ENOTEMPTY):
        raise OutputChanged(target)
    raise OSError(code, os.strerror(code), str(target))


def swap_in(staging: Path, claim: Claim) -> None:
    """Put the complete folder `staging` at `claim.target`, replacing only what was claimed (module docstring)."""
    target = claim.target
    if claim.identity is None:
        if _renameat2(staging, target, _RENAME_NOREPLACE):
            return
        if os.path.lexists(target):
            raise OutputChanged(target)
        os.rename(staging, target)
        return
    if _identity(target) != claim.identity:
        raise OutputChanged(target)
    if _renameat2(staging, target, _RENAME_EXCHANGE):
        if _identity(staging) != claim.identity:  # replaced between the check and the exchange: put it back
            _renameat2(staging, target, _RENAME_EXCHANGE)
            raise OutputChanged(target)
        shutil.rmtree(staging, ignore_errors=True)  # now the old folder
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.replace(target, old / "x")
    try:
        os.replace(staging, target)
    except BaseException:
        os.replace(old / "x", target)  # put the previous folder back
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


__all__ = ["Claim", "OutputChanged", "OutputLock", "lock_path", "refuse_if_held", "remove_stale_staging", "swap_in"]
