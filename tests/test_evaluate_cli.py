"""evaluate.py as a user runs it: the side-by-side table and the JSON file, and one-line exit-2 errors that write
nothing for each mistake."""

import json
import subprocess
import sys

import pytest
from conftest import REPO


def run_evaluate(*args, cwd=None):
    return subprocess.run([sys.executable, str(REPO / "evaluate.py"), *args], capture_output=True, text=True,
                          cwd=cwd or REPO, timeout=600)


def test_table_and_json(ir_data_dir, minilm_folder, tmp_path):
    out = tmp_path / "metrics.json"
    result = run_evaluate("--model", "all-MiniLM-L6-v2", "--model", str(minilm_folder), "--data",
                          str(ir_data_dir / "test.json"), "--dims", "128", "--json", str(out),
                          "--per-query", str(tmp_path / "ranks.jsonl"))
    assert result.returncode == 0, result.stderr
    assert "cosine_map@100" in result.stdout and "dim_128_dot_ndcg@10" in result.stdout and "*" in result.stdout
    metrics = json.loads(out.read_text())
    assert set(metrics) == {"all-MiniLM-L6-v2", str(minilm_folder)}
    assert metrics["all-MiniLM-L6-v2"] == metrics[str(minilm_folder)] and len(metrics["all-MiniLM-L6-v2"]) == 60
    rows = [json.loads(line) for line in (tmp_path / "ranks.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * 4 * 100 and {"query_id", "first_relevant_rank", "top_hit"} <= set(rows[0])


def test_minilm_base_figure_on_aipolicy(aipolicy_dir, tmp_path):
    """The anchor measured with ST: all-MiniLM-L6-v2 scores map@100 0.589 on aipolicy test before training."""
    out = tmp_path / "metrics.json"
    result = run_evaluate("--model", "all-MiniLM-L6-v2", "--data", str(aipolicy_dir / "test.json"), "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert abs(json.loads(out.read_text())["all-MiniLM-L6-v2"]["cosine_map@100"] - 0.5894) < 1e-3


@pytest.mark.parametrize("args,fragment", [
    (["--model", "no-such-model-xyz"], "unknown model 'no-such-model-xyz'"),
    (["--data", "missing.json"], "no such file"),
    (["--dims", "12,x"], "--dims"),
    (["--batch-size", "0"], "--batch-size 0"),
    (["--json", "/nonexistent-dir/out.json"], "--json"),
])
def test_user_errors_exit_2_with_one_line(args, fragment, tmp_path):
    result = run_evaluate("--model", "all-MiniLM-L6-v2", *args, cwd=tmp_path) if "--model" not in args else \
        run_evaluate(*args, "--data", "stdlib:val", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []
