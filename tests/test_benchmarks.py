"""The speed harness (benchmarks/speed.py) in its CPU smoke mode: it must run end to end so that it works when a GPU
is lent. No figure is asserted (timings are not tests); the structure and the token arithmetic are."""

import json
import subprocess
import sys

from conftest import REPO


def test_speed_harness_cpu_smoke(tmp_path):
    out = tmp_path / "smoke.json"
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "speed.py"), "run", "--cpu-smoke",
                             "--shapes-dir", str(tmp_path / "shapes"), "--out", str(out)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| tiny | 4 | fp32 |" in result.stdout
    report = json.loads(out.read_text())
    [train] = report["train"]
    for system in ("sentence-transformers", "embedder"):
        [run] = train["runs"][system]
        assert run["steps"] == 4 and run["timed_steps"] == 3  # 4 optimiser steps, the first dropped as warm-up
        assert run["step_ms"] > 0 and run["end_to_end_s"] > 0
    tokens = train["tokens_per_step"]
    assert 0 < tokens["real"] == tokens["embedder_gemm"] <= tokens["st_computed"]  # padding only adds tokens
    [encode] = report["encode"]
    assert encode["texts"] > 16 and encode["embedder_texts_per_s"] > 0 and encode["sentence-transformers_texts_per_s"] > 0
