"""Per-query changes between two models: which queries fine-tuning helped, which it hurt, and the worst of them.

For each query, the rank of its first relevant passage (1 = top; past the evaluator's k = "not found", ordered
after every found rank) under the base model and under the fine-tuned one. A query improved when that rank got
smaller, worsened when it got larger. Averages hide regressions (a query falling from rank 2 to 13 while the mean
rises); this shows them. Ranks come from the evaluator's per-query rows at full size, cosine.
"""

from __future__ import annotations

import json

from ..model.similarity import cos_sim

VARIANT = "cosine"  # full-size embeddings, cosine: the per-query rows compared


def ranks_of(per_query: dict[str, list[dict]]) -> dict[str, int | None]:
    """query id -> rank of its first relevant passage (None: not in the top k), from an evaluator's rows."""
    return {row["query_id"]: row["first_relevant_rank"] for row in per_query.get(VARIANT, [])}


def compare(base: dict[str, int | None], final: dict[str, int | None], questions: dict[str, str],
            k: int = 100) -> tuple[dict[str, int], list[dict]]:
    """({improved, worsened, unchanged}, one row per query, worst regression first)."""
    def order(rank):
        return k + 1 if rank is None else rank

    rows = [{"query_id": qid, "query": questions.get(qid, ""), "base_rank": base[qid], "rank": final[qid],
             "change": order(final[qid]) - order(base[qid])} for qid in final if qid in base]
    rows.sort(key=lambda row: (-row["change"], row["query_id"]))
    counts = {"improved": sum(r["change"] < 0 for r in rows), "worsened": sum(r["change"] > 0 for r in rows),
              "unchanged": sum(r["change"] == 0 for r in rows)}
    return counts, rows


def summary_lines(name: str, counts: dict[str, int], rows: list[dict], worst: int = 10) -> list[str]:
    def shown(rank):
        return "not found" if rank is None else str(rank)

    total = sum(counts.values())
    title = f"per query{f' ({name})' if name else ''}"
    lines = [f"{title}: {counts['improved']} of {total} improved, {counts['worsened']} worsened, "
             f"{counts['unchanged']} unchanged (rank of the first relevant passage)"]
    regressions = [r for r in rows if r["change"] > 0][:worst]
    if regressions:
        lines.append(f"worst {len(regressions)} regressions (base rank -> fine-tuned rank):")
        lines += [f"  {shown(r['base_rank'])} -> {shown(r['rank'])}  {r['query'][:100]}" for r in regressions]
    return lines


def to_jsonl(changes: dict[str, list[dict]]) -> str:
    """One JSON row per query and eval set (worst first within a set)."""
    return "".join(json.dumps({"eval_set": name, **row}) + "\n" for name, rows in changes.items() for row in rows)


def report(base_ranks: dict, final_ranks: dict, eval_sets: dict) -> tuple[list[str], str]:
    """(console lines, JSONL) comparing per-query ranks for every eval set; eval_sets: name -> IRDataset."""
    lines, changes = [], {}
    for name, ir in eval_sets.items():
        if name in base_ranks and name in final_ranks:
            counts, changes[name or "eval"] = compare(base_ranks[name], final_ranks[name], ir.queries)
            lines += summary_lines(name, counts, changes[name or "eval"])
    return lines, to_jsonl(changes)


def mean_offdiagonal_cosine(model, texts: list[str], batch_size: int) -> float:
    """Collapse check: the mean cosine between different texts (near 1 means every text looks alike)."""
    emb = model.encode(texts[:200], batch_size=batch_size, convert_to_numpy=False).float()
    sims = cos_sim(emb, emb)
    n = sims.shape[0]
    return float((sims.sum() - sims.diagonal().sum()) / max(n * n - n, 1))


__all__ = ["compare", "mean_offdiagonal_cosine", "ranks_of", "report", "summary_lines", "to_jsonl"]
