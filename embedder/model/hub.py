"""The Hugging Face hub and its local cache: where a model name is found when it is not a folder or a packaged
model (embedder/model/locate.py tries them in order).

A hub id is `org/name`; a bare name means `sentence-transformers/name`. The cache is huggingface_hub's
(`HF_HUB_CACHE`); downloads take only the files a model needs. `HF_HUB_OFFLINE=1` turns the hub off. A failed
download is one UserError line that tells apart the ways it fails — gated, not found (or private), access
denied, no network — each with its fix.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UserError

ST_ORG = "sentence-transformers"


class NotOnHub(Exception):
    """The hub has no such model (online=True), or could not be reached (online=False). embedder/model/locate.py
    turns it into the line that also suggests the installed and packaged names."""

    def __init__(self, online: bool):
        super().__init__("not found" if online else "unreachable")
        self.online = online


def repo_id(name: str) -> str:
    return name if "/" in name else f"{ST_ORG}/{name}"


def cached_folder(name: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download
        return Path(snapshot_download(repo_id(name), local_files_only=True))
    except Exception:
        return None


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def download(name: str) -> Path | None:
    """The model's folder downloaded from the hub; None when the hub is switched off (HF_HUB_OFFLINE); NotOnHub when
    the hub has no such model or cannot be reached; a UserError saying which other failure it was
    (hub_failure_message) when the download fails."""
    if hub_offline():
        return None
    try:
        from huggingface_hub import snapshot_download
        patterns = ["*.json", "*.safetensors", "*.txt", "*.model", "1_Pooling/*", "README.md"]
        folder = Path(snapshot_download(repo_id(name), allow_patterns=patterns))
        if not any(folder.glob("*.safetensors")):
            folder = Path(snapshot_download(repo_id(name), allow_patterns=patterns + ["pytorch_model.bin"]))
        return folder
    except ImportError:
        return None
    except Exception as err:  # huggingface_hub's errors, the HTTP client's, OSError
        online = hub_reached(err)
        if online is not None:
            raise NotOnHub(online) from None
        raise UserError(hub_failure_message(name, err)) from None


def hub_reached(err: Exception) -> bool | None:
    """For a failed download: True when the hub answered that the model does not exist (or is private), False when
    the hub could not be reached, None for any other failure."""
    kinds = {cls.__name__ for cls in type(err).__mro__}
    status = getattr(getattr(err, "response", None), "status_code", None)
    if "GatedRepoError" in kinds or status in (401, 403) and "RepositoryNotFoundError" not in kinds:
        return None
    if "RepositoryNotFoundError" in kinds or status == 404:
        return True
    if "LocalEntryNotFoundError" in kinds or kinds & {"ConnectError", "ConnectionError", "TimeoutException",
                                                      "Timeout", "TimeoutError", "ConnectTimeout"}:
        return False
    return None


def hub_failure_message(name: str, err: Exception) -> str:
    """One line for a failed download that is not NotOnHub (hub_reached): gated, access denied, or another error,
    each with its fix. Classified by huggingface_hub's error classes (by name, so any version works) and the HTTP
    status."""
    kinds = {cls.__name__ for cls in type(err).__mro__}
    status = getattr(getattr(err, "response", None), "status_code", None)
    repo = repo_id(name)
    if "GatedRepoError" in kinds:
        return (f"model {name!r} is gated on the Hugging Face hub: accept its conditions at https://huggingface.co/"
                f"{repo} and log in (hf auth login, or set HF_TOKEN)")
    if status in (401, 403) and "RepositoryNotFoundError" not in kinds:
        return (f"model {name!r}: the Hugging Face hub denied access (HTTP {status}); log in with a token that may "
                "read it (hf auth login, or set HF_TOKEN)")
    first = str(err).splitlines()[0][:160] if str(err) else ""
    return f"model {name!r}: the Hugging Face hub download failed ({type(err).__name__}: {first}); try again later"


def cached_names() -> list[str]:
    """Model names in the local Hugging Face cache (short names for sentence-transformers' own)."""
    try:
        from huggingface_hub import constants
        root = Path(constants.HF_HUB_CACHE)
    except ImportError:
        return []
    names = []
    for folder in root.glob("models--*") if root.is_dir() else ():
        repo = folder.name[len("models--"):].replace("--", "/")
        names += [repo, repo.split("/", 1)[1]] if repo.startswith(ST_ORG + "/") else [repo]
    return names



__all__ = ["NotOnHub", "cached_folder", "cached_names", "download", "hub_failure_message", "hub_offline",
           "hub_reached", "repo_id"]

