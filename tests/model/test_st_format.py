"""Export: model.save(path) writes the classic ST folder; SentenceTransformer(path) loads it and gives the same
embeddings as model.encode (<= 1e-5); a failed save leaves no folder (or the previous one) behind."""

import json
import shutil

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

import embedder
from embedder.model import st_format

TEXTS = ["What rights do people have?", "", "Ünïcödé text", "word " * 500, "Automated systems and privacy."]


@pytest.mark.parametrize("which", ["minilm_folder", "mpnet_folder"])
def test_export_loads_in_st_with_identical_embeddings(which, request, tmp_path):
    model = embedder.load(str(request.getfixturevalue(which)), device="cpu")
    model.prompts = {"query": "query: ", "document": ""}
    model.save(tmp_path / "out")
    folder = tmp_path / "out"
    for name in ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json",
                 "1_Pooling/config.json", "config.json", "model.safetensors", "tokenizer.json"):
        assert (folder / name).is_file(), name
    assert (folder / "2_Normalize").is_dir()
    types = [m["type"] for m in json.loads((folder / "modules.json").read_text())]
    assert types == ["sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling",
                     "sentence_transformers.models.Normalize"]
    st = SentenceTransformer(str(folder), device="cpu")
    assert np.abs(st.encode(TEXTS) - model.encode(TEXTS)).max() <= 1e-5
    # the saved prompts are ST's: encode_query applies "query: "
    assert np.abs(st.encode_query(TEXTS) - model.encode(TEXTS, prompt="query: ")).max() <= 1e-5
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_plain_hf_folder_loads_like_st_and_exports(minilm_folder, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
                 "special_tokens_map.json"):
        shutil.copyfile(minilm_folder / name, plain / name)
    ours = embedder.load(str(plain), device="cpu")
    st = SentenceTransformer(str(plain), device="cpu")  # ST builds Transformer + mean Pooling
    assert ours.pooling.modes == ("mean",) and ours.normalize is None
    assert np.abs(st.encode(TEXTS) - ours.encode(TEXTS)).max() <= 1e-5
    ours.save(tmp_path / "exported")
    again = SentenceTransformer(str(tmp_path / "exported"), device="cpu")
    assert np.abs(again.encode(TEXTS) - ours.encode(TEXTS)).max() <= 1e-5


def test_failed_save_leaves_nothing_half_written(minilm_folder, tmp_path, monkeypatch):
    model = embedder.load(str(minilm_folder), device="cpu")

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        model.save(tmp_path / "new")
    assert list(tmp_path.iterdir()) == []  # not even the target folder
    monkeypatch.undo()
    model.save(tmp_path / "new")
    before = (tmp_path / "new" / "model.safetensors").read_bytes()
    monkeypatch.setattr("safetensors.torch.save_file", crash)
    with pytest.raises(RuntimeError):
        model.save(tmp_path / "new")
    assert (tmp_path / "new" / "model.safetensors").read_bytes() == before  # the good folder survives
    assert [p.name for p in tmp_path.iterdir()] == ["new"]


def test_unsupported_module_chain_is_a_user_error(minilm_folder, tmp_path):
    folder = tmp_path / "dense"
    shutil.copytree(minilm_folder, folder)
    modules = json.loads((folder / "modules.json").read_text())
    modules.append({"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"})
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(embedder.UserError, match="modules.json"):
        st_format.read_layout(folder)


def test_saved_folders_get_the_mode_mkdir_gives(tmp_path, minilm_folder):
    """A model written through a private staging folder must still be readable by a serving process of another
    user: the folder's mode is what a plain mkdir gives under the umask, not mkdtemp's 0700."""
    import os
    import stat

    import embedder
    umask = os.umask(0o022)
    try:
        embedder.load(str(minilm_folder), device="cpu").save(tmp_path / "model")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "model").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "model" / "model.safetensors").stat().st_mode) == 0o644
