"""Embeddings from embedder.load(...).encode against sentence-transformers' encode for the same folders:
real all-MiniLM-L6-v2 and all-mpnet-base-v2 (packaged weights), and a bge-like tiny BERT saved by ST with CLS
pooling and do_lower_case=True. Tolerance 1e-5 (max |diff| over all entries)."""


import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.models import Normalize as STNormalize, Pooling as STPooling, Transformer as STTransformer
from tiny_models import cased_bert_folder, classic_bge_like

import embedder


@pytest.mark.parametrize("which", ["minilm_folder", "mpnet_folder"])
def test_real_models_match_st(which, request, varied_texts):
    folder = request.getfixturevalue(which)
    ours = embedder.load(str(folder), device="cpu")
    st = SentenceTransformer(str(folder), device="cpu")
    assert ours.max_seq_length == st.max_seq_length
    expected = st.encode(varied_texts, batch_size=8)
    got = ours.encode(varied_texts, batch_size=8)
    assert got.dtype == np.float32 and got.shape == expected.shape
    assert np.abs(got - expected).max() <= 1e-5
    # truncation then normalisation, as ST orders them
    expected = st.encode(varied_texts[:20], batch_size=8, truncate_dim=64, normalize_embeddings=True)
    got = ours.encode(varied_texts[:20], batch_size=8, truncate_dim=64, normalize_embeddings=True)
    assert got.shape == (20, 64) and np.abs(got - expected).max() <= 1e-5


def test_short_and_full_names_find_the_same_model(minilm_folder):
    a = embedder.load("all-MiniLM-L6-v2", device="cpu").encode(["same model"])
    b = embedder.load("sentence-transformers/all-MiniLM-L6-v2", device="cpu").encode(["same model"])
    assert np.array_equal(a, b)


@pytest.fixture(scope="module", params=["saved_by_st6", "classic_files"])
def bge_like_folder(request, tmp_path_factory, minilm_folder):
    """bge's shape: CLS pooling, do_lower_case=True, Normalize; either saved by ST 6 itself (which folds the
    lower-casing into tokenizer.json) or in the classic layout (do_lower_case in sentence_bert_config.json)."""
    root = tmp_path_factory.mktemp("bge_like")
    if request.param == "saved_by_st6":
        hf = cased_bert_folder(root / "hf", minilm_folder)
        transformer = STTransformer(str(hf), max_seq_length=48, do_lower_case=True)
        modules = [transformer, STPooling(32, pooling_mode="cls"), STNormalize()]
        SentenceTransformer(modules=modules, device="cpu").save(str(root / "st"))
        return root / "st"
    return classic_bge_like(root / "hf", minilm_folder)


def test_bge_like_cls_lowercase_matches_st(bge_like_folder, varied_texts):
    st = SentenceTransformer(str(bge_like_folder), device="cpu")
    ours = embedder.load(str(bge_like_folder), device="cpu")
    assert ours.pooling.modes == ("cls",) and ours.max_seq_length == 48 == st.max_seq_length
    expected = st.encode(varied_texts, batch_size=16)
    got = ours.encode(varied_texts, batch_size=16)
    assert np.abs(got - expected).max() <= 1e-5
    if bge_like_folder.name == "st":
        return  # ST 6.2 + transformers 5 drop the Lowercase it folded into tokenizer.json on reload; we match it
    # lower-casing really happens (the tokenizer itself is cased: upper-case words are [UNK] without it)
    upper = ours.encode(["WHAT RIGHTS DO PEOPLE HAVE?", "what rights do people have?"])
    assert np.abs(upper[0] - upper[1]).max() <= 1e-6


def test_encode_keeps_input_order_and_handles_empty(minilm_folder):
    model = embedder.load(str(minilm_folder), device="cpu")
    texts = ["short", "a much longer text than the first one", "mid length"]
    together = model.encode(texts, batch_size=2)
    alone = np.stack([model.encode([t])[0] for t in texts])
    assert np.abs(together - alone).max() <= 1e-5
    assert model.encode([]).shape == (0, 384)
    as_tensor = model.encode(texts, convert_to_numpy=False)
    assert isinstance(as_tensor, torch.Tensor) and as_tensor.shape == (3, 384)
    with pytest.raises(ValueError, match="batch_size"):
        model.encode(texts, batch_size=0)
