"""Information-retrieval evaluation with sentence-transformers' InformationRetrievalEvaluator definitions.

Queries and corpus are embedded once (the corpus in chunks, so a large corpus never sits in memory whole); each
query's top-k passages (k = the largest cut-off, 100) are kept per score function, ranked by descending score
and, on equal scores, ascending corpus id — ST's total order, so results do not depend on the chunk size.
Scores: cosine = ⟨q/‖q‖, p/‖p‖⟩, dot = ⟨q, p⟩, in float32. Queries without relevant passages are skipped.

Per query, with hits h_1…h_k in rank order, rel(h) ∈ {0, 1} and R the set of relevant passages:
- accuracy@k   = 1 if any of h_1…h_k is relevant
- precision@k  = Σ_{i≤k} rel(h_i) / k                 recall@k = Σ_{i≤k} rel(h_i) / |R|
- mrr@k        = 1 / rank of the first relevant hit within the top k (0 if none)
- ndcg@k       = Σ_{i≤k} rel(h_i)/log2(i+1)  /  Σ_{i≤min(k,|R|)} 1/log2(i+1)
- map@k        = Σ_{i≤k} rel(h_i)·precision@i / min(k, |R|)    (ST's convention; trec_eval divides by |R|)
each averaged over queries. Keys: `{score}_{metric}@{k}` (`cosine_map@100`), prefixed `dim_{d}_` for a Matryoshka
truncation (the embedding's first d entries, then scored as above) and `{name}_` when the evaluator has a name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..model.similarity import cos_sim

SCORE_FUNCTIONS = ("cosine", "dot")
METRIC_ORDER = ("accuracy", "precision", "recall", "ndcg", "mrr", "map")


def metric_names(accuracy_at_k=(1, 3, 5, 10), precision_recall_at_k=(1, 3, 5, 10), mrr_at_k=(10,), ndcg_at_k=(10,),
                 map_at_k=(100,), score_functions=SCORE_FUNCTIONS) -> list[str]:
    """The metric keys in the seeds' table order (30 with the defaults)."""
    names = []
    for score in score_functions:
        names += [f"{score}_accuracy@{k}" for k in accuracy_at_k]
        names += [f"{score}_precision@{k}" for k in precision_recall_at_k]
        names += [f"{score}_recall@{k}" for k in precision_recall_at_k]
        names += [f"{score}_ndcg@{k}" for k in ndcg_at_k]
        names += [f"{score}_mrr@{k}" for k in mrr_at_k]
        names += [f"{score}_map@{k}" for k in map_at_k]
    return names


def prefixed_metric_names(name: str = "", dims: tuple[int | None, ...] = (None,), **cutoffs) -> list[str]:
    """Metric keys as an evaluator reports them: `{name}_` for a named set, `dim_{d}_` for a truncated dimension."""
    base = metric_names(**cutoffs)
    prefix = f"{name}_" if name else ""
    return [prefix + (f"dim_{d}_" if d else "") + key for d in dims for key in base]


def score(name: str, queries: torch.Tensor, passages: torch.Tensor) -> torch.Tensor:
    if name == "cosine":
        return cos_sim(queries, passages)
    if name == "dot":
        return queries @ passages.T
    raise ValueError(f"unknown score function {name!r}; use one of {SCORE_FUNCTIONS}")


def _sort_by_score_then_id(scores: torch.Tensor, id_ranks: torch.Tensor, k: int):
    """Per row, the k best (score desc, id rank asc): two stable sorts, the secondary key first."""
    by_id = torch.argsort(id_ranks, dim=1, stable=True)
    scores, id_ranks = scores.gather(1, by_id), id_ranks.gather(1, by_id)
    by_score = torch.argsort(scores, dim=1, descending=True, stable=True)[:, :k]
    return scores.gather(1, by_score), id_ranks.gather(1, by_score)


class TopK:
    """Running top-k per query over corpus chunks, in ST's (-score, corpus id) order. Memory: Q × (k + chunk)."""

    def __init__(self, num_queries: int, k: int, id_ranks: torch.Tensor):
        self.k = k
        self.id_ranks = id_ranks  # rank of each corpus entry's id in sorted id order
        self.scores = torch.empty(num_queries, 0)
        self.ranks = torch.empty(num_queries, 0, dtype=torch.long)

    def update(self, scores: torch.Tensor, start: int) -> None:
        scores = scores.float().cpu()
        chunk_ranks = self.id_ranks[start:start + scores.shape[1]]
        k = min(self.k, scores.shape[1])
        values, index = torch.topk(scores, k, dim=1)  # candidates; ties at the k-th value resolved below
        threshold = values[:, -1:]
        tied_rows = ((scores >= threshold).sum(dim=1) > k).nonzero().flatten().tolist()
        ranks = chunk_ranks[index]
        for row in tied_rows:  # rare: more candidates at the cut-off than slots, pick by id
            candidates = (scores[row] >= threshold[row]).nonzero().flatten()
            best_s, best_r = _sort_by_score_then_id(scores[row, candidates][None], chunk_ranks[candidates][None], k)
            values[row], ranks[row] = best_s[0], best_r[0]
        self.scores, self.ranks = _sort_by_score_then_id(
            torch.cat([self.scores, values], dim=1), torch.cat([self.ranks, ranks], dim=1), self.k)


@dataclass
class Ranking:
    """Top hits per query: corpus positions (Q, k) in rank order, and whether each is relevant."""
    corpus_index: np.ndarray
    relevant: np.ndarray  # bool (Q, k)
    num_relevant: np.ndarray  # |R| per query


def metrics_from_ranking(ranking: Ranking, accuracy_at_k=(1, 3, 5, 10), precision_recall_at_k=(1, 3, 5, 10),
                         mrr_at_k=(10,), ndcg_at_k=(10,), map_at_k=(100,)) -> dict[str, float]:
    rel = ranking.relevant.astype(np.float64)
    n_rel = ranking.num_relevant.astype(np.float64)
    position = np.arange(1, rel.shape[1] + 1)
    out = {}
    for k in accuracy_at_k:
        out[f"accuracy@{k}"] = float(rel[:, :k].any(axis=1).mean())
    for k in precision_recall_at_k:
        out[f"precision@{k}"] = float((rel[:, :k].sum(axis=1) / k).mean())
    for k in precision_recall_at_k:
        out[f"recall@{k}"] = float((rel[:, :k].sum(axis=1) / n_rel).mean())
    discount = 1.0 / np.log2(position + 1)
    for k in ndcg_at_k:
        dcg = (rel[:, :k] * discount[:k]).sum(axis=1)
        ideal = np.array([sum(1 / math.log2(i + 2) for i in range(min(k, int(n)))) for n in n_rel])
        out[f"ndcg@{k}"] = float((dcg / ideal).mean())
    for k in mrr_at_k:
        top = rel[:, :k]
        first = np.where(top.any(axis=1), 1.0 / (top.argmax(axis=1) + 1), 0.0)
        out[f"mrr@{k}"] = float(first.mean())
    for k in map_at_k:
        top = rel[:, :k]
        precision_at_hit = np.cumsum(top, axis=1) / position[:top.shape[1]] * top
        out[f"map@{k}"] = float((precision_at_hit.sum(axis=1) / np.minimum(k, n_rel)).mean())
    return out


class InformationRetrievalEvaluator:
    """Evaluate a model (anything with `encode(texts, batch_size=…, convert_to_numpy=False, prompt=…)`) on an IR set."""

    def __init__(self, queries: dict[str, str], corpus: dict[str, str], relevant_docs: dict[str, set[str] | list[str]],
                 name: str = "", dims: tuple[int | None, ...] = (None,), batch_size: int = 32,
                 corpus_chunk_size: int = 50_000, score_functions=SCORE_FUNCTIONS, accuracy_at_k=(1, 3, 5, 10),
                 precision_recall_at_k=(1, 3, 5, 10), mrr_at_k=(10,), ndcg_at_k=(10,), map_at_k=(100,),
                 query_prompt: str | None = None, corpus_prompt: str | None = None, compute_precision: str = "fp32",
                 show_progress_bar: bool = False):
        self.query_ids = [qid for qid in queries if relevant_docs.get(qid)]
        self.queries = [queries[qid] for qid in self.query_ids]
        self.corpus_ids = list(corpus)
        self.corpus = [corpus[cid] for cid in self.corpus_ids]
        self.relevant = {qid: set(relevant_docs[qid]) for qid in self.query_ids}
        self.name = name
        self.dims = tuple(dims) or (None,)
        self.batch_size = batch_size
        self.corpus_chunk_size = corpus_chunk_size
        self.score_functions = tuple(score_functions)
        self.cutoffs = dict(accuracy_at_k=accuracy_at_k, precision_recall_at_k=precision_recall_at_k,
                            mrr_at_k=mrr_at_k, ndcg_at_k=ndcg_at_k, map_at_k=map_at_k)
        self.max_k = max(max(v) for v in self.cutoffs.values())
        self.query_prompt, self.corpus_prompt = query_prompt, corpus_prompt
        self.compute_precision = compute_precision
        self.show_progress_bar = show_progress_bar
        order = sorted(range(len(self.corpus_ids)), key=self.corpus_ids.__getitem__)
        self.id_ranks = torch.empty(len(order), dtype=torch.long)
        self.id_ranks[torch.tensor(order, dtype=torch.long)] = torch.arange(len(order))
        self.position_of_rank = torch.tensor(order, dtype=torch.long)

    def metric_keys(self) -> list[str]:
        return prefixed_metric_names(self.name, self.dims, score_functions=self.score_functions, **self.cutoffs)

    def _encode(self, model, texts, prompt):
        return model.encode(texts, batch_size=self.batch_size, convert_to_numpy=False, prompt=prompt,
                            compute_precision=self.compute_precision, show_progress_bar=self.show_progress_bar).float()

    def rankings(self, model) -> dict[tuple[int | None, str], Ranking]:
        """Top-k rankings per (dimension, score function), the corpus encoded chunk by chunk."""
        query_embeddings = self._encode(model, self.queries, self.query_prompt)
        top = {(d, s): TopK(len(self.queries), self.max_k, self.id_ranks) for d in self.dims for s in self.score_functions}
        for start in range(0, len(self.corpus), self.corpus_chunk_size):
            chunk = self._encode(model, self.corpus[start:start + self.corpus_chunk_size], self.corpus_prompt)
            for (d, s), topk in top.items():
                topk.update(score(s, query_embeddings[:, :d], chunk[:, :d]), start)
        out = {}
        for key, topk in top.items():
            index = self.position_of_rank[topk.ranks].numpy()
            relevant = np.array([[self.corpus_ids[i] in self.relevant[qid] for i in row]
                                 for qid, row in zip(self.query_ids, index)], dtype=bool).reshape(index.shape)
            counts = np.array([len(self.relevant[qid]) for qid in self.query_ids])
            out[key] = Ranking(index, relevant, counts)
        return out

    def __call__(self, model) -> dict[str, float]:
        return self.evaluate(model)[0]

    def evaluate(self, model) -> tuple[dict[str, float], dict[str, list[dict]]]:
        """(metrics, per-query rows) where each row gives the rank of the first relevant passage (None if not in
        the top k) and the top passage, per dimension and score function."""
        metrics, per_query = {}, {}
        prefix = f"{self.name}_" if self.name else ""
        for (d, s), ranking in self.rankings(model).items():
            dim_prefix = f"dim_{d}_" if d else ""
            values = metrics_from_ranking(ranking, **self.cutoffs)
            for metric in metric_names(score_functions=(s,), **self.cutoffs):
                metrics[prefix + dim_prefix + metric] = values[metric.split("_", 1)[1]]
            rows = []
            for qid, hits, rel in zip(self.query_ids, ranking.corpus_index, ranking.relevant):
                first = int(rel.argmax()) + 1 if rel.any() else None
                rows.append({"query_id": qid, "first_relevant_rank": first, "top_hit": self.corpus_ids[hits[0]]})
            per_query[f"{dim_prefix}{s}"] = rows
        ordered = {key: metrics[key] for key in self.metric_keys()}
        return ordered, per_query


def format_table(results: dict[str, dict[str, float]], keys: list[str]) -> str:
    """Markdown table: metrics as rows, one column per entry of `results`, the best of each row marked *."""
    models = list(results)
    width = max(len(k) for k in keys)
    col = max(12, *(len(m) for m in models))
    lines = [f"| {'metric':<{width}} | " + " | ".join(f"{m:>{col}}" for m in models) + " |",
             f"|:{'-' * (width + 1)}|" + "|".join("-" * (col + 1) + ":" for _ in models) + "|"]
    for key in keys:
        values = [results[m].get(key) for m in models]
        best = max(v for v in values if v is not None) if any(v is not None for v in values) else None
        cells = []
        for v in values:
            mark = "*" if len(models) > 1 and v is not None and v == best else " "
            cells.append(f"{v:.4f}{mark}".rjust(col) if v is not None else "-".rjust(col))
        lines.append(f"| {key:<{width}} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
