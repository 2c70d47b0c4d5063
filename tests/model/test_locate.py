"""Model resolution and safe loading: packaged weights are found offline and their SHA-256 checked, a wrong hash
or an unknown name is one clear line, the unzip refuses entries that escape its folder, and a pickled .bin runs
no code (torch.load weights_only=True)."""

import importlib
import io
import os
import pickle
import shutil
import zipfile
from pathlib import Path

import pytest
import torch

import embedder
from embedder.errors import UserError
from embedder.model import locate
from embedder.model.weights import read_checkpoint


@pytest.mark.parametrize("name,sha", [("all-MiniLM-L6-v2", locate.PACKAGED["all-minilm-l6-v2"].sha256),
                                      ("all-mpnet-base-v2", locate.PACKAGED["all-mpnet-base-v2"].sha256)])
def test_packaged_weights_found_offline_and_verified(name, sha):
    folder = locate.model_folder(name)
    assert locate.sha256_of(folder / "model.safetensors") == sha
    assert locate.model_folder(f"sentence-transformers/{name}") == folder
    assert locate.model_folder(name.upper()) == folder  # hub names are case-insensitive


def test_wrong_sha256_is_refused(monkeypatch, minilm_folder):
    real = locate.PACKAGED["all-minilm-l6-v2"]
    monkeypatch.setitem(locate.PACKAGED, "all-minilm-l6-v2", locate.PackagedModel(
        real.name, "0" * 64, real.distributions, real.install))
    with pytest.raises(embedder.UserError, match="SHA-256") as err:
        locate.model_folder("all-MiniLM-L6-v2")
    assert "\n" not in str(err.value) and "reinstall" in str(err.value)


def test_unknown_name_and_missing_folder_are_one_line():
    with pytest.raises(embedder.UserError) as err:
        embedder.load("no-such-model-anywhere-123")
    message = str(err.value)
    assert "\n" not in message and "no-such-model-anywhere-123" in message
    assert "installed here: all-MiniLM-L6-v2, all-mpnet-base-v2" in message and "pip install" not in message
    with pytest.raises(embedder.UserError, match="does not exist"):
        embedder.load("./missing/model/folder")


def test_folder_without_model_and_corrupt_weights(tmp_path, minilm_folder):
    with pytest.raises(embedder.UserError, match="holds no model"):
        embedder.load(str(tmp_path))
    broken = tmp_path / "broken"
    shutil.copytree(minilm_folder, broken)
    (broken / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(embedder.UserError, match="could not be read"):
        embedder.load(str(broken))
    (broken / "model.safetensors").unlink()
    with pytest.raises(embedder.UserError, match="holds no weights"):
        embedder.load(str(broken))


@pytest.mark.parametrize("evil", ["top/../../escaped.txt", "/etc/absolute.txt", "top/C:/x.txt"])
def test_unzip_refuses_escaping_entries(tmp_path, evil):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("top/config.json", "{}")
        archive.writestr(evil, "payload")
    destination = tmp_path / "dest"
    destination.mkdir()
    with zipfile.ZipFile(buffer) as archive, pytest.raises(embedder.UserError, match="refusing"):
        locate.safe_extract(archive, destination)
    assert not (tmp_path / "escaped.txt").exists()


def test_multipart_reader_reads_split_file_as_one(tmp_path):
    data = os.urandom(10_000)
    parts = []
    for i, start in enumerate(range(0, len(data), 3_000)):
        parts.append(tmp_path / f"p{i}")
        parts[-1].write_bytes(data[start:start + 3_000])
    with locate.MultiPartReader(parts) as reader:
        assert reader.read() == data
        reader.seek(2_990)
        assert reader.read(20) == data[2_990:3_010]
        reader.seek(-5, io.SEEK_END)
        assert reader.read() == data[-5:]


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED_BY_PICKLE",))


def test_pickled_weights_cannot_run_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(pickle.dumps({"w": _Payload()}))
    with pytest.raises(embedder.UserError, match="could not be read"):
        read_checkpoint(tmp_path)
    assert not Path("PWNED_BY_PICKLE").exists()
    torch.save({"w": torch.ones(2)}, tmp_path / "pytorch_model.bin")  # a plain tensor file still loads
    assert torch.equal(read_checkpoint(tmp_path)["w"], torch.ones(2))


def _hub_error(kind: str, status: int):
    """A real huggingface_hub error with a real HTTP response, as snapshot_download raises it."""
    from huggingface_hub import errors
    http = importlib.import_module(errors.HfHubHTTPError.__mro__[1].__module__.split(".")[0])  # httpx (or a fork)
    response = http.Response(status, request=http.Request("GET", "https://huggingface.co/api/models/org/model"))
    return getattr(errors, kind)(f"{kind} for org/model", response=response)


@pytest.mark.parametrize("raised, expected", [
    (lambda: _hub_error("GatedRepoError", 401), "is gated on the Hugging Face hub: accept its conditions at "
                                                "https://huggingface.co/org/model and log in"),
    (lambda: _hub_error("RepositoryNotFoundError", 401), "the hub has no 'org/model' (if it is private, log in"),
    (lambda: _hub_error("HfHubHTTPError", 403), "the Hugging Face hub denied access (HTTP 403); log in with a token"),
    (lambda: __import__("huggingface_hub").errors.LocalEntryNotFoundError("no connection"),
     "the hub cannot be reached (no network: connect, or pass a model folder)"),
    (lambda: _hub_error("HfHubHTTPError", 500), "the Hugging Face hub download failed (HfHubHTTPError"),
], ids=["gated", "not-found-or-private", "denied", "no-network", "server-error"])
def test_g_hub_failures_are_told_apart(monkeypatch, raised, expected):
    import huggingface_hub

    def snapshot_download(repo_id, **kwargs):
        if kwargs.get("local_files_only"):  # the cache lookup: not cached
            raise huggingface_hub.errors.LocalEntryNotFoundError("not in the cache")
        raise raised()
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    with pytest.raises(UserError) as err:
        locate.model_folder("org/model")
    assert expected in str(err.value) and "\n" not in str(err.value)
