"""The embedded default data set, built at run time from the Python standard library's own source, so every
machine has it and nothing is downloaded: the query is the first sentence of a public function's or class's
docstring, the passage is that object's source with the docstring removed (code search). Modules are split into
train/val/test so no module's code is in two splits; sizes follow the seeds' sets (600 train pairs, 100 val and 100
test queries). It is deterministic for a given Python version.
"""

from __future__ import annotations

import ast
import functools
import random
import re
import sysconfig
from pathlib import Path

from .formats import IRDataset

SPLIT_SIZES = {"test": 100, "val": 100, "train": 600}
_SKIP_DIRS = {"test", "tests", "idlelib", "lib2to3", "site-packages", "dist-packages", "turtledemo", "ensurepip",
              "__phello__", "encodings", "pydoc_data", "tkinter", "venv", "__pycache__", "config-3"}


def _first_sentence(docstring: str) -> str:
    paragraph = " ".join(docstring.strip().split("\n\n")[0].split())
    for end in (". ", "? ", "! "):
        if end in paragraph:
            paragraph = paragraph[:paragraph.index(end) + 1]
    return paragraph


def _code_items(path: Path, module: str) -> list[tuple[str, str, str]]:
    """(id, query, passage) for each public top-level function/class with a docstring in one source file."""
    try:
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source)
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return []
    lines = source.splitlines()
    items = []
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) or node.name.startswith("_"):
            continue
        docstring = ast.get_docstring(node)
        if not docstring:
            continue
        query = _first_sentence(docstring)
        if len(query.split()) < 4 or len(query) > 300 or f"{node.name}(" in query or re.search(r"\w=\w", query):
            continue  # too short, or a signature line rather than a sentence
        doc_node = node.body[0]
        start = (node.decorator_list[0].lineno if node.decorator_list else node.lineno) - 1
        kept = lines[start:doc_node.lineno - 1] + lines[doc_node.end_lineno:node.end_lineno]
        passage = "\n".join(kept).strip()
        if len(passage.splitlines()) < 3:
            continue
        items.append((f"{module}.{node.name}", query, passage[:1500]))
    return items


def stdlib_dataset(seed: int = 42) -> dict[str, IRDataset]:
    """train/val/test IR sets of code search over the standard library (see the module docstring)."""
    return dict(_stdlib_dataset(seed))


@functools.lru_cache(maxsize=2)
def _stdlib_dataset(seed: int, sizes: tuple = tuple(SPLIT_SIZES.items())) -> dict[str, IRDataset]:
    sizes = dict(sizes)
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.rglob("*.py")
                   if not any(part in _SKIP_DIRS or part.startswith("config-") for part in p.relative_to(root).parts[:-1]))
    random.Random(seed).shuffle(files)
    splits: dict[str, list] = {name: [] for name in sizes}
    pending = [name for name in sizes]  # fill test, then val, then train, a whole module at a time
    seen_queries: set[str] = set()
    for path in files:
        while pending and len(splits[pending[0]]) >= sizes[pending[0]]:
            pending.pop(0)
        if not pending:
            break
        module = ".".join(path.relative_to(root).with_suffix("").parts)
        for item in _code_items(path, module):
            if item[1].lower() not in seen_queries:  # a repeated docstring would leak across splits
                seen_queries.add(item[1].lower())
                splits[pending[0]].append(item)
    out = {}
    for split, items in splits.items():
        items = items[:sizes[split]]
        out[split] = IRDataset({f"q:{i}": q for i, q, _ in items}, {f"p:{i}": p for i, _, p in items},
                               {f"q:{i}": [f"p:{i}"] for i, _, _ in items}, f"stdlib:{split}")
    return out


__all__ = ["SPLIT_SIZES", "stdlib_dataset"]
