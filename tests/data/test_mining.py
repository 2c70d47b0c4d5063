"""Hard-negative mining checked against scores recomputed directly: negatives are never a positive's text (even
under another id), never in the top range-min, never within the margin of the positive, K per row; the CLI writes
rows that train.py reads."""

import json
import subprocess
import sys

import torch
from conftest import REPO

import embedder
from embedder.data.mining import mine
from embedder.data.pair_files import load_training_file


def _subset(ir_data_dir, n=30):
    data = json.loads((ir_data_dir / "val.json").read_text())
    keep = list(data["questions"])[:n]
    relevant = {q: data["relevant_contexts"][q] for q in keep}
    corpus = dict(data["corpus"])
    first = relevant[keep[0]][0]
    corpus["copy-of-" + first] = corpus[first]  # the same passage under another id: must never be a negative
    return {q: data["questions"][q] for q in keep}, corpus, relevant


def test_mined_negatives_respect_every_rule(ir_data_dir, minilm_folder):
    queries, corpus, relevant = _subset(ir_data_dir)
    model = embedder.load(str(minilm_folder), device="cpu")
    rows, stats = mine(model, queries, corpus, relevant, num_negatives=2, range_min=1, margin=0.05)
    assert rows and stats["rows"] == len(rows) and stats["skipped_same_text"] >= 1
    texts = list(corpus.values())
    emb = torch.nn.functional.normalize(torch.from_numpy(model.encode(texts)), dim=1)
    by_text = {t: emb[i] for i, t in enumerate(texts)}
    for anchor, positive, *negatives in rows:
        assert len(negatives) == 2
        q = torch.nn.functional.normalize(torch.from_numpy(model.encode([anchor])), dim=1)[0]
        qid = next(k for k, v in queries.items() if v == anchor)
        positive_texts = {corpus[p] for p in relevant[qid]}
        ranking = sorted(texts, key=lambda t: -float(q @ by_text[t]))
        for negative in negatives:
            assert negative not in positive_texts
            assert ranking.index(negative) >= 1
            assert float(q @ by_text[negative]) <= float(q @ by_text[positive]) - 0.05 + 1e-6


def test_cli_writes_trainable_rows(ir_data_dir, tmp_path):
    out = tmp_path / "mined.jsonl"
    result = subprocess.run([sys.executable, "-m", "embedder.mine", "--model", "all-MiniLM-L6-v2", "--data",
                             str(ir_data_dir / "val.json"), "--out", str(out), "--num-negatives", "1",
                             "--range-min", "1", "--margin", "0.02"], capture_output=True, text=True, cwd=REPO,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-1500:]
    assert "negative scores" in result.stdout
    pairs = load_training_file(out)
    assert pairs.columns == ("anchor", "positive", "negative_1") and len(pairs.rows) > 50
