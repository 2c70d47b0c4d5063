"""The sentence-transformers folder format: the one module that knows its file names (the tokenizer's own files
are embedder/model/tokenizer.py's, which writes them).

Read: modules.json lists the chain (Transformer at the root, 1_Pooling/, any Dense modules 2_Dense/, 3_Dense/ …
(embedder/model/dense.py), optional Normalize last);
sentence_bert_config.json holds max_seq_length and do_lower_case; config_sentence_transformers.json holds prompts
and the similarity function. A plain Hugging Face folder (config.json, no modules.json) becomes Transformer +
mean Pooling, as ST builds it.

Every file is read as untrusted: each JSON value must have its type, every path named in a file (module paths,
tokenizer files) must stay inside the folder (`inside`), and a folder that asks for its own code (`auto_map`) is
refused before transformers sees it (`refuse_custom_code`). Each failure is a UserError naming the file.

Write: the classic layout that ST 3.x-6.x load — modules.json with the classic class names, the classic
1_Pooling/config.json booleans, {i}_Dense/, {i}_Normalize/ — plus config.json, model.safetensors under Hugging Face
names, and the tokenizer files, into a staging folder that embedder/files.py `write_atomically` fsyncs and renames onto
the target, so a crash leaves either the old folder or the new one, never half of one.
"""

from __future__ import annotations

import errno
import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

import safetensors.torch
from safetensors import SafetensorError

from ..errors import UserError
from .similarity import SIMILARITY_FUNCTIONS

MODULES_FILE = "modules.json"  # the chain of modules (an ST folder)
HF_CONFIG_FILE = "config.json"  # the transformer's config (a Hugging Face folder, and the Transformer module of ST's)
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX_FILE = "model.safetensors.index.json"  # sharded weights
PICKLED_WEIGHTS_FILE = "pytorch_model.bin"  # read only when a folder has no safetensors


def save_tensors(tensors: dict, path: Path, metadata: dict | None = None) -> None:
    """safetensors' save_file, with its write errors as OSError (a full disk is errno ENOSPC), so every writer's
    `except OSError` sees them: safetensors raises its own SafetensorError for a failed write."""
    try:
        safetensors.torch.save_file(tensors, str(path), metadata=metadata)
    except SafetensorError as err:
        full = "No space left" in str(err) or "os error 28" in str(err)
        code = errno.ENOSPC if full else errno.EIO
        raise OSError(code, os.strerror(code), str(path)) from None


def is_model_folder(folder: Path) -> bool:
    """Whether `folder` holds a model: an ST folder (modules.json) or a Hugging Face one (config.json)."""
    return (folder / MODULES_FILE).is_file() or (folder / HF_CONFIG_FILE).is_file()


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
    dense_dirs: list[Path] = field(default_factory=list)  # the Dense modules' folders, in order


def read_json(path: Path, kind: type | tuple = (dict, list)) -> dict | list:
    """A JSON file of a model folder, which must hold a value of `kind` (a UserError naming the file otherwise)."""
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise UserError(f"{path} is not readable JSON ({err}); repair or re-export the model folder") from None
    if not isinstance(value, kind):
        wanted = " or ".join(t.__name__ for t in (kind if isinstance(kind, tuple) else (kind,)))
        raise UserError(f"{path} holds a JSON {type(value).__name__}, expected {wanted.replace('dict', 'object')}; "
                        "repair or re-export the model folder")
    return value


def inside(folder: Path, relative, source: Path) -> Path:
    """`folder / relative` for a path read from the model folder's file `source`, refused (UserError) unless it is
    a relative path that stays inside `folder` (no absolute path, drive or '..' that climbs out)."""
    if not isinstance(relative, str):
        raise UserError(f"{source}: path {relative!r} is not a string; repair or re-export the model folder")
    pure = PurePosixPath(relative.replace("\\", "/"))
    normal = os.path.normpath(pure.as_posix()) if relative else "."
    if pure.is_absolute() or PureWindowsPath(relative).drive or normal == ".." or normal.startswith("../") \
            or "\0" in relative:
        raise UserError(f"{source}: path {relative!r} points outside the model folder {folder}; "
                        "a model folder may only refer to its own files")
    return folder / normal if normal != "." else folder


def refuse_custom_code(folder: Path) -> None:
    """UserError when the folder's config or tokenizer config asks for its own Python code (`auto_map`): embedder
    never runs code that comes with a model."""
    for name in ("config.json", "tokenizer_config.json"):
        path = folder / name
        if path.is_file():
            value = read_json(path, dict)
            if value.get("auto_map") or value.get("trust_remote_code"):
                raise UserError(f"{path} asks to run custom code shipped with the model (auto_map); embedder never "
                                "runs code from model folders: use a model that needs no custom code")


def check_tokenizer_paths(folder: Path) -> None:
    """UserError when tokenizer_config.json names a file (vocab_file, tokenizer_file, …) outside `folder`:
    transformers would read it from wherever it points."""
    path = folder / "tokenizer_config.json"
    if path.is_file():
        for key, value in read_json(path, dict).items():
            if key.endswith("_file") and value is not None:
                inside(folder, value, path)


def _typed(value, kind, source: Path, key: str):
    if value is not None and not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise UserError(f"{source}: {key} is {value!r}, expected {getattr(kind, '__name__', kind)}; "
                        "repair or re-export the model folder")
    return value


def read_layout(folder: Path) -> FolderLayout:
    """The module chain of an ST folder, every file checked: paths stay inside `folder`, values have their types."""
    modules_file = folder / MODULES_FILE
    if not modules_file.is_file():  # plain Hugging Face folder: ST adds mean pooling
        refuse_custom_code(folder)
        check_tokenizer_paths(folder)
        return FolderLayout(folder, {"pooling_mode": "mean", "word_embedding_dimension": None}, normalize=False)
    modules = read_json(modules_file, list)
    if not all(isinstance(m, dict) for m in modules):
        raise UserError(f"{modules_file} must list objects with type and path; repair or re-export the model folder")
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    dense = kinds[2:len(kinds) - (kinds[-1:] == ["Normalize"])]
    if kinds[:2] != ["Transformer", "Pooling"] or any(k != "Dense" for k in dense):
        raise UserError(f"{modules_file} lists modules {kinds}; embedder runs Transformer -> Pooling [-> Dense …] "
                        f"[-> Normalize] chains only")
    paths = {kind: inside(folder, m.get("path", ""), modules_file) for kind, m in zip(kinds, modules)}
    refuse_custom_code(paths["Transformer"])
    check_tokenizer_paths(paths["Transformer"])
    pooling_file = paths["Pooling"] / "config.json"
    if not pooling_file.is_file():
        raise UserError(f"{pooling_file} is missing; the Pooling module of {modules_file} needs it")
    layout = FolderLayout(paths["Transformer"], read_json(pooling_file, dict), normalize="Normalize" in kinds,
                          dense_dirs=[inside(folder, m.get("path", ""), modules_file)
                                      for m in modules[2:2 + len(dense)]])
    sbert_file = paths["Transformer"] / "sentence_bert_config.json"
    if sbert_file.is_file():
        sbert = read_json(sbert_file, dict)
        layout.max_seq_length = _typed(sbert.get("max_seq_length"), int, sbert_file, "max_seq_length")
        if layout.max_seq_length is not None and layout.max_seq_length < 2:
            raise UserError(f"{sbert_file}: max_seq_length {layout.max_seq_length} is too small; set it to 2 or more")
        layout.do_lower_case = bool(sbert.get("do_lower_case", False))
    st_config_file = folder / "config_sentence_transformers.json"
    if st_config_file.is_file():
        st_config = read_json(st_config_file, dict)
        prompts = _typed(st_config.get("prompts"), dict, st_config_file, "prompts") or {}
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in prompts.items()):
            raise UserError(f"{st_config_file}: prompts must map names to texts; repair or re-export the model folder")
        layout.prompts = dict(prompts)
        layout.default_prompt_name = _typed(st_config.get("default_prompt_name"), str, st_config_file,
                                            "default_prompt_name")
        layout.similarity_fn_name = _typed(st_config.get("similarity_fn_name"), str, st_config_file,
                                           "similarity_fn_name")
        if layout.similarity_fn_name not in (None, *SIMILARITY_FUNCTIONS):
            raise UserError(f"{st_config_file}: similarity_fn_name {layout.similarity_fn_name!r} is not one of "
                            f"{', '.join(SIMILARITY_FUNCTIONS)}; repair or re-export the model folder")
    return layout


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def write_folder(folder: Path, *, weights: dict, hf_config: dict, write_tokenizer,
                 pooling_config: dict, normalize: bool, max_seq_length: int, do_lower_case: bool,
                 prompts: dict, default_prompt_name: str | None, versions: dict, model_card: str | None,
                 similarity_fn_name: str = "cosine", dense: list[dict] = ()) -> None:
    """Fill `folder` (a staging folder) with a classic ST model; `write_tokenizer(folder)` writes the tokenizer's
    files; `dense`: the files of each Dense module ({file name: JSON value or tensors}, Dense.files)."""
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    for files in dense:
        idx = len(modules)
        modules.append({"idx": idx, "name": str(idx), "path": f"{idx}_Dense",
                        "type": "sentence_transformers.models.Dense"})
        for name, value in files.items():
            target = folder / f"{idx}_Dense" / name
            if name.endswith(".json"):
                _write_json(target, value)
            else:
                save_tensors(value, target, metadata={"format": "pt"})
    if normalize:
        idx = len(modules)
        modules.append({"idx": idx, "name": str(idx), "path": f"{idx}_Normalize",
                        "type": "sentence_transformers.models.Normalize"})
        (folder / f"{idx}_Normalize").mkdir()
    _write_json(folder / MODULES_FILE, modules)
    _write_json(folder / "1_Pooling" / "config.json", pooling_config)
    _write_json(folder / "sentence_bert_config.json", {"max_seq_length": max_seq_length, "do_lower_case": do_lower_case})
    _write_json(folder / "config_sentence_transformers.json", {
        "__version__": versions, "prompts": prompts, "default_prompt_name": default_prompt_name,
        "similarity_fn_name": similarity_fn_name})
    hf_config = {k: v for k, v in hf_config.items() if k not in ("_name_or_path",)}
    for key in ("torch_dtype", "dtype"):
        if key in hf_config or key == "torch_dtype":
            hf_config[key] = "float32"
    _write_json(folder / HF_CONFIG_FILE, hf_config)
    save_tensors(weights, folder / WEIGHTS_FILE, metadata={"format": "pt"})
    write_tokenizer(folder)
    if model_card is not None:
        (folder / "README.md").write_text(model_card, encoding="utf-8")
