"""Embedder: the Transformer -> Pooling [-> Dense …] [-> Normalize] chain, loaded from and saved to the ST folder
format.

    texts --tokenizer--> ids, mask (B, L) --backbone--> token embeddings (B, L, D)
          --pooling--> sentence embeddings (B, D) --Dense modules (if any)--> (B, D')
          --normalize (if the model has it)--> (B, D')

The backbone is the hand-written `Encoder` for BERT and MPNet checkpoints and transformers' AutoModel for any
other architecture (never with remote code). Weights are always held in float32.

`encode` follows ST's `SentenceTransformer.encode`: texts sorted by decreasing character length, batches of
`batch_size`, inference mode, then truncation to `truncate_dim` and optional L2 normalisation, rows returned in
input order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from ..files import write_atomically
from ..version import __version__
from . import locate, packing, st_format, weights
from .auto_model import AutoBackbone
from .dense import Dense
from .encoder import Encoder, EncoderConfig
from .normalize import Normalize
from .pooling import Pooling
from .precision import autocast as precision_autocast
from .similarity import similarity
from .tokenizer import TextTokenizer, TokenizerProblem
from .transfer import to_device


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(name: str | torch.device | None, flag: str = "--device") -> torch.device:
    """The torch device for a user's device name (default: cuda when available); UserError for one that is not
    there."""
    if name is None or name == "":
        return default_device()
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise UserError(f"{flag} {name!r} is not a device; use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"{flag} {name}: this machine has no usable CUDA GPU; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"{flag} {name}: there are only {torch.cuda.device_count()} CUDA devices")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise UserError(f"{flag} {name}: MPS is not available here; use --device cpu")
    elif device.type != "cpu":
        raise UserError(f"{flag} {name}: embedder runs on cpu, cuda or mps")
    return device


class Embedder(nn.Module):
    def __init__(self, tokenizer: TextTokenizer, backbone: nn.Module, pooling: Pooling, normalize: bool, *,
                 source_dir: Path, hf_config: dict, passthrough: dict | None = None, prompts: dict | None = None,
                 default_prompt_name: str | None = None, similarity_fn_name: str | None = None,
                 dense: list[Dense] = ()):
        super().__init__()
        self.tokenizer = tokenizer
        self.backbone = backbone
        self.pooling = pooling
        self.dense = nn.ModuleList(dense)
        self.normalize = Normalize() if normalize else None
        self.source_dir = Path(source_dir)
        self.hf_config = hf_config
        self.passthrough = passthrough or {}
        self.prompts = dict(prompts or {})
        self.default_prompt_name = default_prompt_name
        self.similarity_fn_name = similarity_fn_name or "cosine"

    # ----- loading -------------------------------------------------------------------------------------------
    @classmethod
    def load(cls, name_or_path: str, device: str | torch.device | None = None) -> Embedder:
        device = resolve_device(device)
        folder = locate.model_folder(str(name_or_path))
        layout = st_format.read_layout(folder)
        config_file = layout.transformer_dir / st_format.HF_CONFIG_FILE
        if not config_file.is_file():
            raise UserError(f"{layout.transformer_dir} has no config.json; pass a complete model folder")
        hf_config = st_format.read_json(config_file, dict)
        try:
            encoder_config = EncoderConfig.from_hf(hf_config)
        except ValueError as err:
            raise UserError(f"{config_file}: {err}; repair or re-export the model folder") from None
        if encoder_config is not None:
            state = weights.read_checkpoint(layout.transformer_dir)
            with torch.device("meta"), weights.no_random_init():  # shapes only: nothing is allocated until the
                backbone = Encoder(encoder_config)                  # checkpoint matches config.json
            try:
                passthrough = weights.load_state_dict(backbone, state, assign=True)
            except ValueError as err:
                raise UserError(f"{layout.transformer_dir}: {err}; the weights do not match config.json") from None
        else:
            weights.read_checkpoint(layout.transformer_dir)  # the same clear error for missing/corrupt weights
            try:
                backbone, passthrough = AutoBackbone(layout.transformer_dir), {}
            except UserError:
                raise
            except Exception as err:  # transformers' loader: unknown architecture, malformed config, …
                raise UserError(f"{config_file}: transformers cannot build this model "
                                f"({str(err).splitlines()[0][:160] if str(err) else type(err).__name__}); "
                                "pass a BERT/MPNet or other transformers model folder") from None
        weights.check_finite(backbone, layout.transformer_dir)
        positions = encoder_config.usable_positions if encoder_config is not None else \
            getattr(backbone.model.config, "max_position_embeddings", None)
        if layout.max_seq_length is not None and positions is not None and layout.max_seq_length > positions:
            raise UserError(f"{layout.transformer_dir / 'sentence_bert_config.json'}: max_seq_length "
                            f"{layout.max_seq_length} exceeds the model's {positions} positions; lower it")
        try:
            tokenizer = TextTokenizer(str(layout.transformer_dir), layout.max_seq_length, layout.do_lower_case,
                                      positions)
        except TokenizerProblem as err:  # TextTokenizer's own findings, each with its fix
            raise UserError(f"{layout.transformer_dir}: {err}") from None
        except Exception as err:  # the tokenizers library raises plain Exception for a malformed tokenizer.json
            first = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
            raise UserError(f"{layout.transformer_dir}: no usable tokenizer ({first}); the folder needs a valid "
                            "tokenizer.json") from None
        pooling_config = dict(layout.pooling_config)
        dimension = pooling_config.get("word_embedding_dimension", pooling_config.get("embedding_dimension"))
        if dimension is None:
            pooling_config["word_embedding_dimension"] = backbone.hidden_size
        elif isinstance(dimension, bool) or dimension != backbone.hidden_size:
            raise UserError(f"pooling config of {folder}: word_embedding_dimension {dimension!r} differs from the "
                            f"model's hidden size {backbone.hidden_size}; repair 1_Pooling/config.json")
        try:
            pooling = Pooling.from_config(pooling_config)
        except (ValueError, TypeError) as err:
            raise UserError(f"pooling config of {folder}: {err}; repair 1_Pooling/config.json") from None
        dense = [Dense.load(path) for path in layout.dense_dirs]
        width = pooling.output_dimension
        for path, module in zip(layout.dense_dirs, dense):
            if module.in_features != width:
                raise UserError(f"{path / 'config.json'}: in_features {module.in_features} differs from the "
                                f"{width} dimensions the module before it gives; repair or re-export the model folder")
            weights.check_finite(module, path)
            width = module.out_features
        model = cls(tokenizer, backbone, pooling, layout.normalize,
                    source_dir=layout.transformer_dir, hf_config=hf_config, passthrough=passthrough,
                    prompts=layout.prompts, default_prompt_name=layout.default_prompt_name,
                    similarity_fn_name=layout.similarity_fn_name, dense=dense)
        return model.to(device).eval()

    # ----- forward -------------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.backbone.parameters()).device

    @property
    def embedding_dimension(self) -> int:
        return self.dense[-1].out_features if len(self.dense) else self.pooling.output_dimension

    @property
    def max_seq_length(self) -> int:
        return self.tokenizer.max_seq_length

    def tokenize(self, texts: list[str], prompt: str | None = None) -> dict:
        """Padded features for `texts`, with `prompt` prepended to each (its length kept for pooling)."""
        if prompt:
            texts = [prompt + text for text in texts]
        features = self.tokenizer(texts)
        if prompt:
            features["prompt_length"] = self.tokenizer.prompt_length(prompt)
        return features

    def plan(self, features: dict) -> dict:
        """Tokenised features on the host with the hand-written encoder's packing plan for this model's device
        (key "packing"; embedder/model/packing.py), made here from the CPU attention mask, so the forward reads
        nothing back from the device. Other backbones need none."""
        if not isinstance(self.backbone, Encoder):
            return features
        return {**features, "packing": packing.plan(features["attention_mask"], packing.max_groups(self.device))}

    def forward(self, features: dict) -> torch.Tensor:
        """Sentence embeddings (B, D) of tokenised features (with a packing plan, see `plan`, or without); normalised
        when the model has a Normalize module."""
        extra = {"packed": features["packing"]} if "packing" in features else {}
        token_embeddings = self.backbone(features["input_ids"], features["attention_mask"],
                                         features.get("token_type_ids"), **extra)
        return self.sentence_embedding(token_embeddings, features)

    def sentence_embedding(self, token_embeddings: torch.Tensor, features: dict) -> torch.Tensor:
        """Pooling, the Dense modules, then Normalize (when the model has them) of the backbone's token embeddings
        (B, L, H) -> (B, D)."""
        embeddings = self.pooling(token_embeddings, features["attention_mask"], features.get("prompt_length"))
        return self.head(embeddings)

    def head(self, embeddings: torch.Tensor) -> torch.Tensor:
        """What follows Pooling: the Dense modules, then Normalize (when the model has them)."""
        for module in self.dense:
            embeddings = module(embeddings)
        return self.normalize(embeddings) if self.normalize is not None else embeddings

    def resolve_prompt(self, prompt: str | None, prompt_name: str | None) -> str | None:
        if prompt is not None:
            return prompt
        if prompt_name is not None:
            if prompt_name not in self.prompts:
                raise ValueError(f"prompt name {prompt_name!r} not in this model's prompts {sorted(self.prompts)}")
            return self.prompts[prompt_name]
        return self.prompts.get(self.default_prompt_name) if self.default_prompt_name else None

    def encode_query(self, texts, prompt_name: str | None = None, prompt: str | None = None, **kwargs):
        """`encode` with the saved "query" prompt (unless a prompt is given), as ST's encode_query."""
        if prompt is None and prompt_name is None and "query" in self.prompts:
            prompt_name = "query"
        return self.encode(texts, prompt_name=prompt_name, prompt=prompt, **kwargs)

    def encode_document(self, texts, prompt_name: str | None = None, prompt: str | None = None, **kwargs):
        """`encode` with the saved "document" (or "passage", "corpus") prompt, as ST's encode_document."""
        if prompt is None and prompt_name is None:
            prompt_name = next((n for n in ("document", "passage", "corpus") if n in self.prompts), None)
        return self.encode(texts, prompt_name=prompt_name, prompt=prompt, **kwargs)

    def similarity(self, a, b) -> torch.Tensor:
        """(n, m) similarities of two sets of embeddings by the model's similarity function (see similarity.py)."""
        return similarity(a, b, self.similarity_fn_name)

    @torch.inference_mode()
    def encode(self, texts, batch_size: int = 32, convert_to_numpy: bool = True, normalize_embeddings: bool = False,
               truncate_dim: int | None = None, show_progress_bar: bool | None = None, prompt: str | None = None,
               prompt_name: str | None = None, precision: str = "float32", convert_to_tensor: bool = False,
               compute_precision: str = "fp32"):
        """Embeddings of `texts` as a float32 numpy array (n, dim), or a tensor with convert_to_tensor=True (or
        convert_to_numpy=False); one string gives one vector (dim,), as in ST. `precision` is ST's output
        quantisation (only "float32" here); `compute_precision` (fp32, bf16, fp16) is the autocast the model runs
        under (see embedder/model/precision.py)."""
        single = isinstance(texts, str)
        if single:
            texts = [texts]
        if convert_to_tensor:
            convert_to_numpy = False
        texts = list(texts)
        bad = next((i for i, text in enumerate(texts) if not isinstance(text, str)), None)
        if bad is not None:
            raise TypeError(f"encode: input {bad} is {type(texts[bad]).__name__}, not a string; pass a string or a "
                            "list of strings")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
        if precision != "float32":
            raise ValueError(f"precision={precision!r}: quantised embeddings are not supported, only 'float32'; "
                             "for bf16/fp16 computation pass compute_precision")
        prompt = self.resolve_prompt(prompt, prompt_name)
        was_training = self.training
        self.eval()
        order = np.argsort([-len(text) for text in texts])  # longest first, as ST sorts
        batches = range(0, len(texts), batch_size)
        if show_progress_bar:
            from tqdm.auto import tqdm
            batches = tqdm(batches, desc="Batches")
        device = self.device
        autocast = precision_autocast(device, compute_precision)
        chunks = []
        for start in batches:
            features = self.plan(self.tokenize([texts[i] for i in order[start:start + batch_size]], prompt))
            features = to_device(features, device)
            with autocast:
                embeddings = self(features)
            embeddings = embeddings.float()
            if truncate_dim is not None:
                embeddings = embeddings[:, :truncate_dim]
            if normalize_embeddings:
                embeddings = torch.nn.functional.normalize(embeddings, p=2, dim=1)
            chunks.append(embeddings.cpu() if convert_to_numpy else embeddings)
        self.train(was_training)
        width = truncate_dim or self.embedding_dimension
        stacked = torch.cat(chunks) if chunks else torch.empty(0, width)
        stacked = stacked[torch.as_tensor(np.argsort(order), dtype=torch.long)] if len(texts) else stacked
        if single:
            stacked = stacked[0]
        return stacked.numpy() if convert_to_numpy else stacked

    # ----- saving --------------------------------------------------------------------------------------------
    def export_state_dict(self) -> dict[str, torch.Tensor]:
        if isinstance(self.backbone, Encoder):
            return weights.export_state_dict(self.backbone, self.passthrough)
        return self.backbone.export_state_dict()

    def save(self, path: str | Path, model_card: str | None = None, extra_files: dict[str, str] | None = None,
             claim=None, then=None) -> None:
        """Write a classic ST folder at `path`, atomically (embedder/files.py `write_atomically`); extra_files:
        name -> text written beside the model (a training log, the run's settings); claim: what the write may
        replace (embedder/ownership.py; default: what is at `path` now); then(folder): more files written into
        the staging folder once the model is there (an export), before the swap."""
        import transformers

        state = self.export_state_dict()
        versions = {"embedder": __version__, "transformers": transformers.__version__, "pytorch": torch.__version__}

        def fill(folder: Path):
            st_format.write_folder(
                folder, weights=state, hf_config=self.hf_config,
                write_tokenizer=lambda into: self.tokenizer.save_files(self.source_dir, into), pooling_config=self.pooling.config(),
                normalize=self.normalize is not None, max_seq_length=self.max_seq_length,
                do_lower_case=self.tokenizer.do_lower_case, prompts=self.prompts,
                default_prompt_name=self.default_prompt_name, versions=versions, model_card=model_card,
                similarity_fn_name=self.similarity_fn_name, dense=[module.files() for module in self.dense])
            for name, text in (extra_files or {}).items():
                (folder / name).write_text(text, encoding="utf-8")
            if then is not None:
                then(folder)

        write_atomically(Path(path), fill, claim)


def load(name_or_path: str, device: str | torch.device | None = None) -> Embedder:
    """Load a model by folder, Hugging Face cache entry, packaged base name or hub name (see embedder.bases)."""
    return Embedder.load(name_or_path, device)


__all__ = ["Embedder", "load"]
