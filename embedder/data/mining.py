"""Hard-negative mining: retrieve passages for each question with a model and keep hard but safe negatives.

    python -m embedder.mine --model all-MiniLM-L6-v2 --data train.json --out pairs.jsonl \
        --num-negatives 1 --range-min 2 --margin 0.05

For each (question, positive) pair, candidates are the corpus ranked by cosine similarity to the question.
A candidate is skipped when
- it is among the `range-min` best-ranked passages (the top ranks of generated data are mostly false negatives),
- its text equals the text of any passage relevant to the question (compared by text, not id: copies of a
  passage under another id are the classic false negative),
- it scores within `margin` of the positive: cos(q, neg) > cos(q, pos) − margin (likely another answer);
and the next `num-negatives` candidates (within the `range-max` best) become the negatives. Rows that do not find
enough negatives are left out, so every row has the same columns. Writes anchor, positive, negative_1… JSONL
that train.py reads, and prints score statistics so the choice of margin can be checked.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import torch

from ..files import write_file_atomically


def mine(model, queries: dict[str, str], corpus: dict[str, str], relevant: dict[str, list[str]], num_negatives: int = 1,
         range_min: int = 0, range_max: int = 100, margin: float = 0.0, batch_size: int = 32):
    """Rows (anchor, positive, negatives…) and statistics."""
    query_ids = [q for q in queries if relevant.get(q)]
    corpus_ids = list(corpus)
    q_emb = torch.nn.functional.normalize(model.encode([queries[q] for q in query_ids], batch_size=batch_size,
                                                       convert_to_numpy=False).float(), dim=1)
    c_emb = torch.nn.functional.normalize(model.encode([corpus[c] for c in corpus_ids], batch_size=batch_size,
                                                       convert_to_numpy=False).float(), dim=1)
    position = {cid: i for i, cid in enumerate(corpus_ids)}
    depth = min(len(corpus_ids), range_min + range_max)
    rows, stats = [], {"pairs": 0, "rows": 0, "short": 0, "skipped_rank": 0, "skipped_same_text": 0,
                       "skipped_margin": 0, "positive_scores": [], "negative_scores": []}
    for start in range(0, len(query_ids), 256):
        scores = q_emb[start:start + 256] @ c_emb.T
        top_scores, top_index = torch.topk(scores, depth, dim=1)
        for row, qid in enumerate(query_ids[start:start + 256]):
            relevant_texts = {corpus[p] for p in relevant[qid]}
            for pid in relevant[qid]:
                stats["pairs"] += 1
                positive_score = scores[row, position[pid]].item()
                negatives, negative_scores = [], []
                for rank, (score, index) in enumerate(zip(top_scores[row].tolist(), top_index[row].tolist())):
                    if len(negatives) == num_negatives:
                        break
                    text = corpus[corpus_ids[index]]
                    if rank < range_min:
                        stats["skipped_rank"] += 1
                    elif text in relevant_texts:
                        stats["skipped_same_text"] += 1
                    elif score > positive_score - margin:
                        stats["skipped_margin"] += 1
                    elif text not in negatives:
                        negatives.append(text)
                        negative_scores.append(score)
                if len(negatives) < num_negatives:
                    stats["short"] += 1
                    continue
                rows.append((queries[qid], corpus[pid], *negatives))
                stats["positive_scores"].append(positive_score)
                stats["negative_scores"] += negative_scores
    stats["rows"] = len(rows)
    return rows, stats


def describe(stats: dict) -> str:
    def summary(values):
        if not values:
            return "-"
        return f"mean {statistics.mean(values):.3f}, median {statistics.median(values):.3f}, " \
               f"min {min(values):.3f}, max {max(values):.3f}"
    return "\n".join([
        "| quantity | value |", "|---|---|",
        f"| (question, positive) pairs | {stats['pairs']} |",
        f"| rows written | {stats['rows']} |",
        f"| pairs left out (too few negatives) | {stats['short']} |",
        f"| candidates skipped: rank < range-min | {stats['skipped_rank']} |",
        f"| candidates skipped: same text as a positive | {stats['skipped_same_text']} |",
        f"| candidates skipped: within margin of the positive | {stats['skipped_margin']} |",
        f"| positive scores | {summary(stats['positive_scores'])} |",
        f"| negative scores | {summary(stats['negative_scores'])} |",
    ])


def write_rows(path: Path, rows: list[tuple[str, ...]]) -> None:
    lines = []
    for row in rows:
        record = {"anchor": row[0], "positive": row[1]}
        record.update({f"negative_{i}": text for i, text in enumerate(row[2:], start=1)})
        lines.append(json.dumps(record, ensure_ascii=False) + "\n")
    write_file_atomically(path, "".join(lines))
