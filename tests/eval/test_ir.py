"""The IR evaluator: every metric equals sentence-transformers' InformationRetrievalEvaluator (<= 1e-6) for a
real model on aipolicy test, full and truncated; a toy ranking whose metrics are worked out by hand; chunked
ranking equals one-chunk ranking, ties included."""

import json
import math

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.evaluation import InformationRetrievalEvaluator as STEvaluator
from sentence_transformers.util import cos_sim, dot_score

import embedder
from embedder.eval.ir import InformationRetrievalEvaluator, metric_names


def test_thirty_metric_names_in_seed_order():
    names = metric_names()
    assert len(names) == 30 and names[0] == "cosine_accuracy@1" and names[14] == "cosine_map@100"
    assert names[15:] == [n.replace("cosine", "dot") for n in names[:15]]


@pytest.mark.parametrize("dim", [None, 128])
def test_matches_st_evaluator_on_aipolicy(ir_data_dir, minilm_folder, dim):
    data = json.loads((ir_data_dir / "test.json").read_text())
    relevant = {q: set(v) for q, v in data["relevant_contexts"].items()}
    st_model = SentenceTransformer(str(minilm_folder), device="cpu")
    expected = STEvaluator(data["questions"], data["corpus"], relevant, truncate_dim=dim,
                           score_functions={"cosine": cos_sim, "dot": dot_score})(st_model)
    ours = InformationRetrievalEvaluator(data["questions"], data["corpus"], relevant, dims=(dim,))(
        embedder.load(str(minilm_folder), device="cpu"))
    prefix = f"dim_{dim}_" if dim else ""
    assert len(ours) == 30 == len(expected)
    for key, value in expected.items():
        assert abs(ours[prefix + key] - value) <= 1e-6, key


class FixedEmbeddings:
    """A stand-in model: encode() looks texts up in a table."""

    def __init__(self, table):
        self.table = table

    def encode(self, texts, **kwargs):
        return torch.tensor([self.table[t] for t in texts], dtype=torch.float32)


def _toy():
    table = {"q1": [1, 0, 0, 0], "q2": [0, 1, 0, 0], "q3": [0, 0, 1, 0],
             "D1": [1, 0, 0, 0], "D2": [0.8, 0.6, 0, 0], "D3": [0, 1, 0, 0], "D4": [0.6, 0.8, 0, 0]}
    corpus = {"d3": "D3", "d1": "D1", "d4": "D4", "d2": "D2"}  # insertion order differs from id order
    queries = {"q1": "q1", "q2": "q2", "q3": "q3", "q4": "q1"}
    relevant = {"q1": {"d2", "d3"}, "q2": {"d4"}, "q3": {"d2"}}  # q4 has none: skipped, as ST skips it
    return FixedEmbeddings(table), queries, corpus, relevant


def test_metrics_by_hand():
    model, queries, corpus, relevant = _toy()
    # rankings (score desc, then id asc):  q1: d1 1.0, d2 .8, d4 .6, d3 0   -> relevant at ranks 2, 4
    #                                      q2: d3 1.0, d4 .8, d2 .6, d1 0   -> relevant at rank 2
    #                                      q3: all 0 -> d1, d2, d3, d4      -> relevant at rank 2 (tie order)
    m = InformationRetrievalEvaluator(queries, corpus, relevant)(model)
    log = math.log2
    assert m["cosine_accuracy@1"] == 0 and m["cosine_accuracy@3"] == 1
    assert m["cosine_precision@3"] == pytest.approx((1 / 3 + 1 / 3 + 1 / 3) / 3)
    assert m["cosine_precision@5"] == pytest.approx((2 / 5 + 1 / 5 + 1 / 5) / 3)
    assert m["cosine_recall@3"] == pytest.approx((1 / 2 + 1 + 1) / 3)
    assert m["cosine_recall@10"] == 1
    assert m["cosine_mrr@10"] == pytest.approx(0.5)
    ndcg_q1 = (1 / log(3) + 1 / log(5)) / (1 + 1 / log(3))
    assert m["cosine_ndcg@10"] == pytest.approx((ndcg_q1 + 1 / log(3) + 1 / log(3)) / 3)
    # MAP: q1 (1/2 + 2/4) / min(100, 2) = 0.5; q2 and q3: (1/2) / 1
    assert m["cosine_map@100"] == pytest.approx(0.5)
    assert m["dot_map@100"] == m["cosine_map@100"]


def test_truncation_prefixes_and_chunking_do_not_change_results(ir_data_dir, minilm_folder):
    data = json.loads((ir_data_dir / "val.json").read_text())
    model = embedder.load(str(minilm_folder), device="cpu")
    one = InformationRetrievalEvaluator(data["questions"], data["corpus"], data["relevant_contexts"], dims=(None, 64))
    many = InformationRetrievalEvaluator(data["questions"], data["corpus"], data["relevant_contexts"], dims=(None, 64),
                                         corpus_chunk_size=7, name="val")
    a, b = one(model), many(model)
    assert list(b) == ["val_" + k for k in a] and len(a) == 60 and "dim_64_cosine_map@100" in a
    assert np.allclose(list(a.values()), list(b.values()), atol=1e-12)
    model_toy, queries, corpus, relevant = _toy()
    tied = InformationRetrievalEvaluator(queries, corpus, relevant, corpus_chunk_size=1)
    assert tied(model_toy) == InformationRetrievalEvaluator(queries, corpus, relevant)(model_toy)


def test_per_query_ranks():
    model, queries, corpus, relevant = _toy()
    _, per_query = InformationRetrievalEvaluator(queries, corpus, relevant).evaluate(model)
    rows = {r["query_id"]: r for r in per_query["cosine"]}
    assert rows["q1"]["first_relevant_rank"] == 2 and rows["q1"]["top_hit"] == "d1"
    assert rows["q3"]["top_hit"] == "d1"
