"""The sentence-transformers folder format: the only module that knows its file names.

Read: modules.json lists the chain (Transformer at the root, 1_Pooling/, optional 2_Normalize/);
sentence_bert_config.json holds max_seq_length and do_lower_case; config_sentence_transformers.json holds prompts
and the similarity function. A plain Hugging Face folder (config.json, no modules.json) becomes Transformer +
mean Pooling, as ST builds it.

Write: the classic layout that ST 3.x-6.x load — modules.json with the classic class names, the classic
1_Pooling/config.json booleans, 2_Normalize/ — plus config.json, model.safetensors under Hugging Face names,
and the tokenizer files. Everything goes into a temporary sibling folder that is fsynced and then renamed onto the
target, so a crash leaves either the old folder or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError

SUPPORTED_MODULES = ("Transformer", "Pooling", "Normalize")


@dataclass
class FolderLayout:
    transformer_dir: Path
    pooling_config: dict
    normalize: bool
    max_seq_length: int | None = None
    do_lower_case: bool = False
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None
    similarity_fn_name: str | None = None


def read_json(path: Path) -> dict | list:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{path} is not readable JSON ({err}); repair or re-export the model folder") from None


def read_layout(folder: Path) -> FolderLayout:
    modules_file = folder / "modules.json"
    if not modules_file.is_file():  # plain Hugging Face folder: ST adds mean pooling
        return FolderLayout(folder, {"pooling_mode": "mean", "word_embedding_dimension": None}, normalize=False)
    modules = read_json(modules_file)
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules] if isinstance(modules, list) else None
    if not kinds or kinds[0] != "Transformer" or any(k not in SUPPORTED_MODULES for k in kinds) \
            or kinds.count("Pooling") != 1:
        raise UserError(f"{modules_file} lists modules {kinds}; embedder runs Transformer -> Pooling "
                        f"[-> Normalize] chains only")
    paths = {kind: folder / m.get("path", "") for kind, m in zip(kinds, modules)}
    layout = FolderLayout(paths["Transformer"], read_json(paths["Pooling"] / "config.json"),
                          normalize="Normalize" in kinds)
    sbert_file = paths["Transformer"] / "sentence_bert_config.json"
    if sbert_file.is_file():
        sbert = read_json(sbert_file)
        layout.max_seq_length = sbert.get("max_seq_length")
        layout.do_lower_case = bool(sbert.get("do_lower_case", False))
    st_config_file = folder / "config_sentence_transformers.json"
    if st_config_file.is_file():
        st_config = read_json(st_config_file)
        layout.prompts = dict(st_config.get("prompts") or {})
        layout.default_prompt_name = st_config.get("default_prompt_name")
        layout.similarity_fn_name = st_config.get("similarity_fn_name")
    return layout


def check_writable(path: str | Path, flag: str, is_file: bool = False) -> None:
    """UserError unless `path` could be created: a file needs its folder to exist; a folder needs its nearest
    existing ancestor to be a folder we can write in."""
    path = Path(path).expanduser()
    parent = path.resolve().parent
    if is_file and not parent.is_dir():
        raise UserError(f"{flag} {path}: folder {parent} does not exist; create it or choose another path")
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"{flag} {path}: {parent} is a file, not a folder; choose another path")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".write-test-", dir=parent))
    except OSError as err:
        raise UserError(f"{flag} {path}: cannot write in {parent} ({err.strerror}); choose another path") from None


def write_file_atomically(path: str | Path, text: str) -> None:
    """Write `text` to a temporary sibling, then rename it onto `path`: readers see the old file or the new one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def _fsync_tree(folder: Path) -> None:
    for root, _, files in os.walk(folder):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                os.fsync(f.fileno())
        fd = os.open(root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomically(target: Path, fill) -> None:
    """Call fill(staging_folder), then swap the filled folder onto `target` (replacing any old one)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    old = None
    try:
        fill(staging)
        _fsync_tree(staging)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old / "x")
        os.replace(staging, target)
    except BaseException:
        if old is not None and not target.exists():
            os.replace(old / "x", target)  # put the previous folder back
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def write_folder(folder: Path, *, weights: dict, hf_config: dict, tokenizer_dir: Path, tokenizer_files,
                 pooling_config: dict, normalize: bool, max_seq_length: int, do_lower_case: bool,
                 prompts: dict, default_prompt_name: str | None, versions: dict, model_card: str | None) -> None:
    """Fill `folder` (a staging folder) with a classic ST model."""
    from safetensors.torch import save_file

    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
        (folder / "2_Normalize").mkdir()
    _write_json(folder / "modules.json", modules)
    _write_json(folder / "1_Pooling" / "config.json", pooling_config)
    _write_json(folder / "sentence_bert_config.json", {"max_seq_length": max_seq_length, "do_lower_case": do_lower_case})
    _write_json(folder / "config_sentence_transformers.json", {
        "__version__": versions, "prompts": prompts, "default_prompt_name": default_prompt_name,
        "similarity_fn_name": "cosine"})
    hf_config = {k: v for k, v in hf_config.items() if k not in ("_name_or_path",)}
    for key in ("torch_dtype", "dtype"):
        if key in hf_config or key == "torch_dtype":
            hf_config[key] = "float32"
    _write_json(folder / "config.json", hf_config)
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    for name in tokenizer_files:
        if (tokenizer_dir / name).is_file():
            shutil.copyfile(tokenizer_dir / name, folder / name)
    if model_card is not None:
        (folder / "README.md").write_text(model_card, encoding="utf-8")
