"""Tiny random models built in the tests, shared by the test modules that need the same shape."""

import json
import shutil

import torch
from transformers import AutoModel, BertConfig, BertModel, Gemma3TextConfig


def cased_bert_folder(folder, minilm_folder):
    """A tiny random BERT whose tokenizer is MiniLM's WordPiece with lower-casing switched off."""
    torch.manual_seed(1)
    BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=64, max_position_embeddings=128)).save_pretrained(folder)
    tokenizer = json.loads((minilm_folder / "tokenizer.json").read_text(encoding="utf-8"))
    tokenizer["normalizer"]["lowercase"] = False
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer), encoding="utf-8")
    config = json.loads((minilm_folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    (folder / "tokenizer_config.json").write_text(json.dumps(dict(config, do_lower_case=False)), encoding="utf-8")
    shutil.copyfile(minilm_folder / "vocab.txt", folder / "vocab.txt")
    return folder


def classic_bge_like(folder, minilm_folder):
    """bge's shape in the classic layout: the cased tiny BERT above, do_lower_case=True in
    sentence_bert_config.json, CLS pooling, Normalize."""
    cased_bert_folder(folder, minilm_folder)
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 48, "do_lower_case": True}))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 32, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}))
    return folder


def gemma3_folder(folder, minilm_folder):
    """A tiny random Gemma3 with bidirectional attention (EmbeddingGemma's backbone) as a Hugging Face folder, with
    MiniLM's WordPiece tokenizer."""
    torch.manual_seed(2)
    AutoModel.from_config(Gemma3TextConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                           num_key_value_heads=2, head_dim=8, intermediate_size=64, vocab_size=30522,
                                           max_position_embeddings=128, pad_token_id=0,
                                           use_bidirectional_attention=True)).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copyfile(minilm_folder / name, folder / name)
    return folder
