"""One tiny random model per architecture users bring (configs built here, MiniLM's WordPiece vocabulary as the
tokenizer, dropout off), saved by sentence-transformers with its own modules: embedder loads it and encodes as ST
does (≤ 1e-5), two training steps of `embedder.fit` change the weights as two steps of ST's trainer on the same
batches do (the relative L2 difference of the weight changes ≤ 1e-2; measured 4e-6 to 8e-5, 6e-3 with CLS pooling),
and the folder embedder writes reloads in ST with embedder's embeddings.

XLM-RoBERTa (mean and CLS: multilingual-e5, bge-m3 dense, paraphrase-multilingual), ModernBERT (modernbert-embed,
gte-modernbert), Qwen3 with last-token pooling and left padding (Qwen3-Embedding), DistilBERT, RoBERTa, ELECTRA,
DeBERTa-v2, and Gemma3 with bidirectional attention and two Dense modules before Normalize (EmbeddingGemma's
Transformer -> Pooling -> Dense -> Dense -> Normalize) — each goes through transformers' AutoModel inside embedder
(embedder/model/auto_model.py); the Dense modules are embedder/model/dense.py, and their weights are compared too."""

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import (AutoModel, DebertaV2Config, DistilBertConfig, ElectraConfig, Gemma3TextConfig,
                          ModernBertConfig, Qwen3Config, RobertaConfig, XLMRobertaConfig)

import embedder
from embedder.data import batching

SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
ARCHITECTURES = {
    "xlm-roberta-mean": (lambda: XLMRobertaConfig(**SMALL, max_position_embeddings=130, pad_token_id=0), "mean", "right"),
    "xlm-roberta-cls": (lambda: XLMRobertaConfig(**SMALL, max_position_embeddings=130, pad_token_id=0), "cls", "right"),
    "modernbert": (lambda: ModernBertConfig(**SMALL, max_position_embeddings=128, pad_token_id=0,
                                            global_attn_every_n_layers=2, local_attention=16), "mean", "right"),
    "qwen3-lasttoken": (lambda: Qwen3Config(**SMALL, num_key_value_heads=2, head_dim=8, max_position_embeddings=128,
                                            pad_token_id=0), "lasttoken", "left"),
    "distilbert": (lambda: DistilBertConfig(dim=32, n_layers=2, n_heads=4, hidden_dim=64, max_position_embeddings=128,
                                            pad_token_id=0), "mean", "right"),
    "roberta": (lambda: RobertaConfig(**SMALL, max_position_embeddings=130, pad_token_id=0), "mean", "right"),
    "electra": (lambda: ElectraConfig(**SMALL, embedding_size=32, max_position_embeddings=128), "mean", "right"),
    "deberta-v2": (lambda: DebertaV2Config(**SMALL, max_position_embeddings=128, relative_attention=True,
                                           position_buckets=16, pos_att_type=["p2c", "c2p"]), "mean", "right"),
    "gemma3-dense": (lambda: Gemma3TextConfig(**SMALL, num_key_value_heads=2, head_dim=8, max_position_embeddings=128,
                                              pad_token_id=0, sliding_window=16, use_bidirectional_attention=True),
                     "mean", "right"),
}
# EmbeddingGemma's head, small: 32 -> 64 (Identity, no bias) -> 32 (Identity, no bias); one Tanh with a bias as well
DENSE = {"gemma3-dense": [(32, 64, False, None), (64, 32, False, None), (32, 32, True, torch.nn.Tanh())]}
TEXTS = ["What rights do people have?", "short", "A longer passage about retrieval and embeddings. " * 8, ""]
LR, BATCH, STEPS = 5e-5, 4, 2


def no_dropout(config):
    for key in ("hidden_dropout_prob", "attention_probs_dropout_prob", "dropout", "attention_dropout", "mlp_dropout",
                "embedding_dropout", "seq_classif_dropout", "qa_dropout"):
        if hasattr(config, key):
            setattr(config, key, 0.0)
    config.vocab_size = 30522
    return config


@pytest.fixture(scope="module", params=list(ARCHITECTURES))
def st_folder(request, tmp_path_factory, minilm_folder):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Dense, Normalize, Pooling, Transformer
    make_config, pooling, side = ARCHITECTURES[request.param]
    root = tmp_path_factory.mktemp(request.param)
    torch.manual_seed(3)
    AutoModel.from_config(no_dropout(make_config())).save_pretrained(root / "hf")
    for name in ("tokenizer.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copyfile(minilm_folder / name, root / "hf" / name)
    tokenizer_config = json.loads((minilm_folder / "tokenizer_config.json").read_text())
    (root / "hf" / "tokenizer_config.json").write_text(json.dumps({**tokenizer_config, "padding_side": side}))
    transformer = Transformer(str(root / "hf"), max_seq_length=48)
    dense = [Dense(n_in, n_out, bias=bias, activation_function=act)
             for n_in, n_out, bias, act in DENSE.get(request.param, [])]
    modules = [transformer, Pooling(32, pooling_mode=pooling), *dense, Normalize()]
    SentenceTransformer(modules=modules, device="cpu").save(str(root / "st"))
    return root / "st"


def st_weights(st) -> dict:
    """The float weights of an ST model: the transformer's under its own names, each Dense module's as
    "{i}_Dense/linear.weight" (the file embedder writes them to)."""
    weights = {k: v.detach().clone().float() for k, v in st[0].auto_model.state_dict().items()}
    for i, module in enumerate(st):
        if type(module).__name__ == "Dense":
            weights.update({f"{i}_Dense/{k}": v.detach().clone().float() for k, v in module.state_dict().items()})
    return weights


def test_loads_and_encodes_as_st(st_folder):
    from sentence_transformers import SentenceTransformer
    expected = SentenceTransformer(str(st_folder), device="cpu").encode(TEXTS)
    got = embedder.load(str(st_folder), device="cpu").encode(TEXTS)
    assert np.abs(got - expected).max() <= 1e-5


def test_two_steps_match_st_trainer_and_the_output_reloads_in_st(st_folder, tmp_path, monkeypatch):
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers import SentenceTransformerTrainingArguments as Arguments
    from sentence_transformers.losses import MultipleNegativesRankingLoss
    pairs = [(f"What is item {i}?", f"Item {i} is a thing with the number {i} on it.") for i in range(STEPS * BATCH)]
    batches = [list(range(i, i + BATCH)) for i in range(0, len(pairs), BATCH)]
    st = SentenceTransformer(str(st_folder), device="cpu")
    base = st_weights(st)
    args = Arguments(output_dir=str(tmp_path / "st"), per_device_train_batch_size=BATCH, num_train_epochs=1,
                     learning_rate=LR, warmup_ratio=0.0, weight_decay=0.0, max_grad_norm=1.0, seed=42,
                     save_strategy="no", report_to="none", disable_tqdm=True, use_cpu=True,
                     batch_sampler=lambda dataset, **kwargs: batches)
    dataset = Dataset.from_dict({"anchor": [a for a, _ in pairs], "positive": [p for _, p in pairs]})
    SentenceTransformerTrainer(model=st, args=args, train_dataset=dataset,
                               loss=MultipleNegativesRankingLoss(st, scale=20.0)).train()
    theirs = st_weights(st)

    monkeypatch.setattr(batching, "epoch_batches", lambda *a, **k: [(0, list(b)) for b in batches])
    result = embedder.fit(base=str(st_folder), train=pairs, eval=None, eval_general=(), merge="off", epochs=1,
                          batch_size=BATCH, matryoshka_dims=None, precision="fp32", output=str(tmp_path / "ours"),
                          echo=lambda *a, **k: None)
    ours = load_file(str(tmp_path / "ours" / "model.safetensors"))
    for folder in (tmp_path / "ours").glob("*_Dense"):
        ours.update({f"{folder.name}/{k}": v for k, v in load_file(str(folder / "model.safetensors")).items()})
    moved, diff, norm = 0.0, 0.0, 0.0
    weights = [name for name, t in base.items() if t.is_floating_point() and not name.startswith("pooler.")]
    assert weights and all(name in ours for name in weights)
    for name in weights:
        before = base[name]
        delta_theirs, delta_ours = theirs[name] - before, ours[name].float() - before
        moved = max(moved, delta_theirs.abs().max().item())
        diff += float(((delta_theirs - delta_ours) ** 2).sum())
        norm += float((delta_theirs ** 2).sum())
    # a wrong loss, schedule or batch moves the weights differently by O(1) of the change; Adam turns the float noise
    # of near-zero gradients into lr-sized updates (CLS pooling leaves most gradients near zero): measured 4e-6 to
    # 8e-5 for mean and last-token pooling, 6e-3 for XLM-RoBERTa with CLS
    assert (diff / norm) ** 0.5 <= 1e-2
    assert moved >= 0.5 * LR  # the weights did move
    reloaded = SentenceTransformer(str(tmp_path / "ours"), device="cpu").encode(TEXTS)
    assert np.abs(reloaded - result.model.encode(TEXTS)).max() <= 1e-5
