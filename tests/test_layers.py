"""The package's shape: layers that import one way, no import cycle, imports at the top of their files, modules
readable in one sitting, and an inference path that never loads training code.

The layers, lowest first (embedder/__init__.py's docstring and the README's "What runs" say the same):

    errors, version, files, runtime  <-  model/  <-  data/  <-  eval/  <-  train/  <-  cli (and the `python -m` aliases)

The imports are read from the source with `ast` (every `import` and `from … import`, also inside functions), so a
lazy import cannot hide a cycle. Run: python -m pytest -q tests/test_layers.py
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

PACKAGE = REPO / "embedder"
LAYERS = {"errors": 0, "version": 0, "files": 0, "ownership": 0, "runtime": 0, "model": 1, "data": 2, "eval": 3, "train": 4, "cli": 5, "mine": 5,
          "merge": 5, "__main__": 5, "__init__": 5}
MAX_LINES = 330  # "about 300": nanoGPT's model.py, the ceiling STYLE.md names


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return LAYERS["__init__"]
    if parts[1] == "__main__" or parts[-1] == "__main__":
        return LAYERS["__main__"]
    return LAYERS[parts[1]]


def imports_of(module: str) -> list[tuple[str, int, bool]]:
    """(imported embedder module, line, at module level) for every import statement in `module`'s file."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in MODULES else source
                       for alias in node.names]
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target.startswith("embedder") and target != module:
                found.append((target, node.lineno, id(node) in top))
    return found


def test_the_layers_are_the_ones_named_here():
    assert {m.split(".")[1] for m in MODULES if "." in m} == set(LAYERS) - {"__init__"}


@pytest.mark.parametrize("module", [m for m in MODULES if "__main__" not in m])
def test_imports_go_down_the_layers_and_sit_at_the_top(module):
    for target, line, at_top in imports_of(module):
        where = f"{MODULES[module].relative_to(REPO)}:{line} imports {target}"
        if target == "embedder":  # the package itself: its __init__ imports model/, so only cli-level code may
            assert layer(module) == LAYERS["cli"], where
            continue
        assert layer(target) <= layer(module), f"{where}, a higher layer"
        assert at_top, f"{where} inside a function: move it to the top of the file"


def test_no_import_cycle():
    graph = {m: sorted({t for t, _, _ in imports_of(m)} - {"embedder"}) for m in MODULES if "__main__" not in m}
    state, path = {}, []

    def visit(node):
        state[node] = "open"
        path.append(node)
        for nxt in graph.get(node, ()):
            if state.get(nxt) == "open":
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = "done"

    for node in graph:
        if node not in state:
            visit(node)


def test_the_cycle_check_finds_a_cycle(monkeypatch):
    """The check above is not vacuous: two modules that import each other are reported."""
    fake = {"embedder.a": ["embedder.b"], "embedder.b": ["embedder.a"]}
    monkeypatch.setattr(sys.modules[__name__], "imports_of", lambda m: [(t, 1, True) for t in fake.get(m, [])])
    monkeypatch.setattr(sys.modules[__name__], "MODULES", {**MODULES, "embedder.a": None, "embedder.b": None})
    with pytest.raises(AssertionError, match="import cycle: embedder.a -> embedder.b -> embedder.a"):
        test_no_import_cycle()


@pytest.mark.parametrize("module", list(MODULES))
def test_every_module_reads_in_one_sitting(module):
    lines = MODULES[module].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{MODULES[module].relative_to(REPO)} has {lines} lines; split it by concept"


def test_loading_and_encoding_import_no_training_code():
    """`embedder.load` and `encode` (the inference path) never import embedder/train/ nor embedder/cli."""
    code = ("import sys, embedder\n"
            "embedder.load('all-MiniLM-L6-v2', device='cpu').encode(['a question'])\n"
            "print(sorted(m for m in sys.modules if m.startswith(('embedder.train', 'embedder.cli'))))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1] == "[]"
    after = subprocess.run([sys.executable, "-c", "import sys, embedder; embedder.fit; "
                            "print('embedder.train.run' in sys.modules)"], capture_output=True, text=True, cwd=REPO)
    assert after.stdout.strip() == "True", after.stderr[-2000:]  # the check above would see a training import
