"""Per-query changes (issue 15 item 4): counts and the worst regressions, by hand and through evaluate.py --compare
(checked against the evaluator's own per-query rows, which tests/eval/test_ir.py checks against ST)."""

import json
import subprocess
import sys

from conftest import REPO

from embedder.eval import regressions


def test_compare_by_hand():
    base = {"a": 2, "b": 1, "c": None, "d": 5, "e": 3}
    final = {"a": 13, "b": 1, "c": 4, "d": None, "e": 1}
    counts, rows = regressions.compare(base, final, {q: f"question {q}" for q in base}, k=100)
    assert counts == {"improved": 2, "worsened": 2, "unchanged": 1}
    # d: 5 -> not found (101) is +96, a: 2 -> 13 is +11, b 0, e -2, c: 101 -> 4 is -97
    assert [(r["query_id"], r["change"]) for r in rows] == [("d", 96), ("a", 11), ("b", 0), ("e", -2), ("c", -97)]
    lines = regressions.summary_lines("", counts, rows)
    assert lines[0] == "per query: 2 of 5 improved, 2 worsened, 1 unchanged (rank of the first relevant passage)"
    assert lines[2:] == ["  5 -> not found  question d", "  2 -> 13  question a"]


def test_evaluate_compare_agrees_with_the_per_query_rows(tiny_bert_folder, ir_data_dir, tmp_path):
    data = str(ir_data_dir / "test.json")
    run = subprocess.run([sys.executable, str(REPO / "evaluate.py"), "--model", "all-MiniLM-L6-v2", "--compare",
                          str(tiny_bert_folder), "--data", data, "--per-query", str(tmp_path / "q.jsonl")],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "q.jsonl").read_text().splitlines()]
    rank = {(r["model"], r["query_id"]): r["first_relevant_rank"] or 101 for r in rows if r["variant"] == "cosine"}
    queries = {q for _, q in rank}
    change = [rank[("all-MiniLM-L6-v2", q)] - rank[(str(tiny_bert_folder), q)] for q in queries]
    expected = (f"{sum(c < 0 for c in change)} of {len(queries)} improved, {sum(c > 0 for c in change)} worsened, "
                f"{sum(c == 0 for c in change)} unchanged")
    assert f"all-MiniLM-L6-v2 against {tiny_bert_folder}, per query (test): {expected}" in run.stdout
