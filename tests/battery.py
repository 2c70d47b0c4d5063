"""The reliability battery's runner: every case is a fresh subprocess, judged the way a user sees it — exit code,
the number of lines on stderr, no traceback, nothing written, and (for security cases) no marker file.

A case is (name, argv, fragment[, options]). argv starts with a script path relative to the repository
('train.py', 'evaluate.py') or '-m'/'-c' for python itself. `wrap` runs a script under a wrapper that first
executes a few lines of Python in the same process (to fake a full disk or send a signal at an exact phase),
through tests/fault_wrapper.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(argv: list[str], cwd: Path, env: dict | None = None, wrap: str | None = None,
        timeout: int = 600) -> subprocess.CompletedProcess:
    command = [sys.executable]
    if wrap is not None:
        command += [str(REPO / "tests" / "fault_wrapper.py"), wrap]
    if argv[0] in ("-m", "-c"):
        command += argv
    else:
        command += [str(REPO / argv[0]), *argv[1:]]
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=full_env, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def check(result: subprocess.CompletedProcess, fragment: str, exit_code: int = 2) -> None:
    assert result.returncode == exit_code, (result.returncode, result.stderr[-1500:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-1500:]
    assert "Traceback" not in result.stderr
    assert fragment in lines[0], lines[0]


def run_cases(cases, cwd: Path, *, watched: Path | None = None, markers: list[Path] = (), env: dict | None = None,
              workers: int = 3) -> None:
    """Run every case (in parallel: each is its own process) and report every failure, not just the first.
    watched: a folder whose listing must not change (default cwd); markers: files no case may create."""
    watched = watched or cwd
    before = listing(watched)

    def one(case):
        name, argv, fragment, *rest = case
        options = rest[0] if rest else {}
        try:
            result = run(argv, cwd, env={**(env or {}), **options.get("env", {})}, wrap=options.get("wrap"))
            check(result, fragment, options.get("exit_code", 2))
            return None
        except (AssertionError, subprocess.TimeoutExpired) as err:
            return f"{name}: {err}"

    with ThreadPoolExecutor(workers) as pool:
        failures = [f for f in pool.map(one, cases) if f]
    after = listing(watched)
    if after != before:
        failures.append(f"files written: {sorted(set(after) ^ set(before))[:10]}")
    failures += [f"marker {m} exists: code from a model folder ran" for m in markers if m.exists()]
    assert not failures, "\n".join(failures)
