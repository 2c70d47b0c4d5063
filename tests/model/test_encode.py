"""ST's everyday `encode` habits, each compared with sentence-transformers on the same model folder: one string gives
one vector, convert_to_tensor, encode_query / encode_document with the saved prompts, and similarity() with the
saved similarity function."""

import json

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

import embedder
from embedder.model.similarity import similarity

TEXTS = ["What rights do people have?", "Rights are listed in the charter.", "Cats sleep a lot."]


@pytest.fixture(scope="module")
def prompted_folder(tmp_path_factory, minilm_folder):
    """all-MiniLM-L6-v2 saved with query/document prompts and dot-product similarity."""
    folder = tmp_path_factory.mktemp("prompted") / "model"
    model = embedder.load(str(minilm_folder), device="cpu")
    model.prompts = {"query": "query: ", "document": "passage: "}
    model.similarity_fn_name = "dot"
    model.save(folder)
    assert json.loads((folder / "config_sentence_transformers.json").read_text())["similarity_fn_name"] == "dot"
    return folder


def test_one_string_and_tensors_as_in_st(minilm_folder):
    ours, st = embedder.load(str(minilm_folder), device="cpu"), SentenceTransformer(str(minilm_folder), device="cpu")
    one, st_one = ours.encode(TEXTS[0]), st.encode(TEXTS[0])
    assert one.shape == st_one.shape == (384,) and np.abs(one - st_one).max() <= 1e-5
    tensor, st_tensor = ours.encode(TEXTS, convert_to_tensor=True), st.encode(TEXTS, convert_to_tensor=True)
    assert torch.is_tensor(tensor) and tensor.shape == st_tensor.shape
    assert (tensor - st_tensor).abs().max() <= 1e-5
    one_tensor = ours.encode(TEXTS[0], convert_to_tensor=True)
    assert torch.is_tensor(one_tensor) and one_tensor.shape == st.encode(TEXTS[0], convert_to_tensor=True).shape


def test_query_document_prompts_and_similarity_as_in_st(prompted_folder):
    ours, st = embedder.load(str(prompted_folder), device="cpu"), SentenceTransformer(str(prompted_folder), device="cpu")
    queries, st_queries = ours.encode_query(TEXTS), st.encode_query(TEXTS)
    documents, st_documents = ours.encode_document(TEXTS), st.encode_document(TEXTS)
    assert np.abs(queries - st_queries).max() <= 1e-5 and np.abs(documents - st_documents).max() <= 1e-5
    assert np.abs(queries - ours.encode(TEXTS)).max() > 1e-3  # the prompt was applied
    assert st.similarity_fn_name == ours.similarity_fn_name == "dot"
    assert (ours.similarity(queries, documents) - st.similarity(st_queries, st_documents)).abs().max() <= 1e-5


@pytest.mark.parametrize("function", ["cosine", "dot", "euclidean", "manhattan"])
def test_similarity_functions_as_in_st(function):
    from sentence_transformers.similarity_functions import SimilarityFunction
    a, b = torch.randn(4, 8), torch.randn(3, 8)
    st_fn = SimilarityFunction.to_similarity_fn(function)
    assert (similarity(a, b, function) - st_fn(a, b)).abs().max() <= 1e-5
    assert similarity(a[0], b[0], function).shape == st_fn(a[0], b[0]).shape
