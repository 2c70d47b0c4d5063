"""Text -> token ids, exactly as sentence-transformers' Transformer module tokenises.

ST calls the model's fast tokenizer with padding to the longest text of the batch and truncation
"longest_first" at max_seq_length, the special tokens ([CLS] … [SEP], or <s> … </s>) added by the tokenizer's
own post-processor, so truncation keeps them. `do_lower_case` prepends a Lowercase normaliser to the backend
tokenizer unless one is already there (the same test ST applies). max_seq_length comes from
sentence_bert_config.json; without one it is the tokenizer's model_max_length capped at the model's
max_position_embeddings.

`encode_unpadded` returns plain id lists, for tokenising a training set once up front.

`save_files` writes the tokenizer files of a saved model so that they say what the model does, for clients that
read them instead of sentence_bert_config.json (transformers' AutoTokenizer and pipelines, raw `tokenizers`, ONNX
Runtime clients): tokenizer.json truncates "longest_first" at max_seq_length and pads to the longest text of a batch
(no fixed length), with the lower-casing `do_lower_case` asks for in its normaliser; tokenizer_config.json's
model_max_length is max_seq_length. ST reads its own max_seq_length and lower-cases itself, which these files
agree with, so ST's embeddings do not change.

Texts are cut to CHARS_PER_TOKEN · max_seq_length characters before tokenising. The fast tokenizer truncates only
after tokenising the whole text, so one 50 MB text took 52 s and 7 GB of memory to yield its first 256 tokens;
the cut cannot change the result unless the kept tokens average more than CHARS_PER_TOKEN characters each (real
text averages 4-6; only runs of whitespace or characters the normaliser deletes come near).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from tokenizers import Tokenizer
from tokenizers.normalizers import Lowercase, Sequence as NormalizerSequence
from transformers import AutoTokenizer

# Files a tokenizer may consist of; the exporter copies whichever the source folder has.
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json",
    "merges.txt", "added_tokens.json", "sentencepiece.bpe.model", "spiece.model", "tokenizer.model",
)


def _has_lowercase(normalizer) -> bool:
    if isinstance(normalizer, Lowercase):
        return True
    return isinstance(normalizer, NormalizerSequence) and any(isinstance(n, Lowercase) for n in normalizer)


CHARS_PER_TOKEN = 100


class TokenizerProblem(ValueError):
    """A tokenizer folder that loads but cannot serve; the message says what is wrong and the fix."""


MAX_STATED_LENGTH = 1 << 20  # no model takes a million tokens: a larger model_max_length means none was stated


class TextTokenizer:
    def __init__(self, folder: str, max_seq_length: int | None, do_lower_case: bool, max_positions: int | None):
        # never code from the folder (st_format.refuse_custom_code has already turned such folders away)
        self.hf = AutoTokenizer.from_pretrained(folder, use_fast=True, trust_remote_code=False)
        if not self.hf.is_fast:
            raise ValueError(f"{folder} has no fast tokenizer (tokenizer.json)")
        if max_seq_length is None:
            max_seq_length = self.hf.model_max_length
            if max_positions is not None and max_positions > 0:
                max_seq_length = min(max_seq_length, max_positions)
        if isinstance(max_seq_length, float) and max_seq_length.is_integer():
            max_seq_length = int(max_seq_length)
        if not isinstance(max_seq_length, int) or max_seq_length < 2:
            raise ValueError(f"max_seq_length {max_seq_length!r} is not a length")
        if max_seq_length > MAX_STATED_LENGTH:  # transformers' stand-in (1e30) for a length nobody stated
            raise TokenizerProblem("no file says how long a text may be (tokenizer_config.json has no model_max_length, "
                             "config.json no max_position_embeddings); set max_seq_length in "
                             "sentence_bert_config.json")
        self.max_seq_length = int(max_seq_length)
        if self.hf.pad_token_id is None:
            raise ValueError("the tokenizer has no padding token")
        self.do_lower_case = do_lower_case
        if do_lower_case:
            backend = self.hf.backend_tokenizer
            if not _has_lowercase(backend.normalizer):
                rest = list(backend.normalizer) if isinstance(backend.normalizer, NormalizerSequence) else (
                    [backend.normalizer] if backend.normalizer is not None else [])
                backend.normalizer = NormalizerSequence([Lowercase(), *rest])

    @property
    def pad_token_id(self) -> int:
        return self.hf.pad_token_id

    def _cut(self, texts) -> list[str]:
        limit = CHARS_PER_TOKEN * self.max_seq_length
        return [text if len(text) <= limit else text[:limit] for text in texts]

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Padded batch: input_ids, attention_mask (and token_type_ids where the model has them)."""
        return dict(self.hf(self._cut(texts), padding=True, truncation="longest_first",
                            max_length=self.max_seq_length, return_tensors="pt"))

    def encode_unpadded(self, texts: list[str]) -> list[list[int]]:
        """Token ids per text, truncated like `__call__`, without padding."""
        return self.hf(self._cut(texts), padding=False, truncation="longest_first",
                       max_length=self.max_seq_length)["input_ids"]

    def prompt_length(self, prompt: str) -> int:
        """Tokens a prompt occupies at the start of a text (its trailing special token excluded), as ST counts."""
        ids = self.encode_unpadded([prompt])[0]
        return len(ids) - (1 if ids and ids[-1] in self.hf.all_special_ids else 0)

    def save_files(self, source_dir: Path, folder: Path) -> None:
        """Copy the tokenizer files of `source_dir` into `folder`, tokenizer.json and tokenizer_config.json made to
        agree with this tokenizer (see the module docstring)."""
        for name in TOKENIZER_FILES:
            if (source_dir / name).is_file():
                shutil.copyfile(source_dir / name, folder / name)
        backend = Tokenizer.from_str(self.hf.backend_tokenizer.to_str())  # a copy: the lower-casing included
        backend.enable_truncation(self.max_seq_length, strategy="longest_first", direction="right")
        backend.enable_padding(direction=self.hf.padding_side, pad_id=self.hf.pad_token_id,
                               pad_type_id=self.hf.pad_token_type_id, pad_token=self.hf.pad_token)
        backend.save(str(folder / "tokenizer.json"))
        config_path = folder / "tokenizer_config.json"
        config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
        config["model_max_length"] = self.max_seq_length  # do_lower_case stays: transformers would strip accents too
        config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
