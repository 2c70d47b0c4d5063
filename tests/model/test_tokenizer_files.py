"""The tokenizer files of a folder embedder writes say what the model does (embedder/model/tokenizer.py
`save_files`): clients that read them instead of sentence_bert_config.json — transformers' AutoTokenizer with
truncation=True, the feature-extraction pipeline, raw `tokenizers` — give sentence-transformers' embeddings of the
base model (≤ 1e-5) on texts longer than max_seq_length, and ST itself still gives them."""

import json
import shutil

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer
from tokenizers import Tokenizer
from transformers import AutoModel, AutoTokenizer, pipeline

import embedder

LONG = "The quick brown fox jumps over the lazy dog near the river bank, again and again. " * 40
TEXTS = [LONG, "What rights do people have?", "word " * 600, "A short passage."]


def mean_pool_normalised(tokens: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    mask = mask.unsqueeze(-1).float()
    return torch.nn.functional.normalize((tokens * mask).sum(1) / mask.sum(1), dim=-1).numpy()


@pytest.fixture(scope="module", params=["all-MiniLM-L6-v2", "all-mpnet-base-v2"])
def saved(request, tmp_path_factory, minilm_folder, mpnet_folder):
    base = {"all-MiniLM-L6-v2": minilm_folder, "all-mpnet-base-v2": mpnet_folder}[request.param]
    folder = tmp_path_factory.mktemp("tokenizer_files") / "model"
    embedder.load(str(base), device="cpu").save(folder)
    expected = SentenceTransformer(str(base), device="cpu").encode(TEXTS)
    yield folder, expected, {"all-MiniLM-L6-v2": 256, "all-mpnet-base-v2": 384}[request.param]
    shutil.rmtree(folder.parent, ignore_errors=True)


def test_files_state_max_seq_length_and_no_fixed_padding(saved):
    folder, _, max_seq_length = saved
    tokenizer = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    assert tokenizer["truncation"]["max_length"] == max_seq_length
    assert tokenizer["padding"]["strategy"] == "BatchLongest"
    assert json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))["model_max_length"] \
        == max_seq_length


def test_clients_reading_the_tokenizer_files_get_st_embeddings(saved):
    folder, expected, max_seq_length = saved
    model = AutoModel.from_pretrained(str(folder)).eval()
    auto = AutoTokenizer.from_pretrained(str(folder))
    with torch.no_grad():
        batch = auto(TEXTS, padding=True, truncation=True, return_tensors="pt")
        assert batch["input_ids"].shape[1] == max_seq_length
        got = mean_pool_normalised(model(**batch).last_hidden_state, batch["attention_mask"])
        assert np.abs(got - expected).max() <= 1e-5

        raw = Tokenizer.from_file(str(folder / "tokenizer.json")).encode_batch(TEXTS)
        features = {"input_ids": torch.tensor([e.ids for e in raw]),
                    "attention_mask": torch.tensor([e.attention_mask for e in raw])}
        if "token_type_ids" in batch:
            features["token_type_ids"] = torch.tensor([e.type_ids for e in raw])
        got = mean_pool_normalised(model(**features).last_hidden_state, features["attention_mask"])
        assert np.abs(got - expected).max() <= 1e-5

    extractor = pipeline("feature-extraction", model=str(folder), tokenizer=str(folder), device="cpu")
    rows = [np.array(extractor(text, truncation=True))[0] for text in TEXTS]
    got = np.stack([row.mean(0) / np.linalg.norm(row.mean(0)) for row in rows])
    assert np.abs(got - expected).max() <= 1e-5

    assert np.abs(SentenceTransformer(str(folder), device="cpu").encode(TEXTS) - expected).max() <= 1e-5
