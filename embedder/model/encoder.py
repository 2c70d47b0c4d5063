"""Hand-written Transformer encoders for the seeds' two architectures: BERT and MPNet.

Both are post-LayerNorm encoders (Vaswani et al. 2017, Devlin et al. 2019). One layer maps x (B, L, D) to

    h = LN_attn(x + Dropout(W_o · Attention(x)))
    y = LN_ffn(h + Dropout(W_2 · GELU(W_1 · h)))

with Attention(x) = softmax(Q Kᵀ / √d_head + bias + mask) V per head, computed by
`torch.nn.functional.scaled_dot_product_attention` (attention-probability dropout included while training).
Legend: B batch, L padded length, D hidden size, H heads, d_head = D / H.

Where the two architectures differ:
- Embeddings. BERT: token + token-type + absolute position (0, 1, …, L-1), then LayerNorm. MPNet: token + position,
  where positions count non-pad tokens starting at pad_id + 1 = 2 (fairseq convention), then LayerNorm.
- Attention bias. BERT: none. MPNet: a learned relative-position bias, bias[h, i, j] = E[bucket(j - i), h], with
  T5's bucketing: 32 buckets, half per direction; |j - i| < 8 gets its own bucket, larger distances share
  logarithmic buckets up to distance 128. It is shared by all layers and ignores padding (positions 0…L-1).
- Checkpoint names differ; `embedder.weights` maps both onto this module's names.

Departures from transformers' BertModel/MPNetModel: q, k and v are one fused Linear (one GEMM instead of three;
`embedder.weights` splits it back on export), attention goes through SDPA, and there is no pooler head (its
weights are kept aside untouched so an export still carries them). Outputs equal transformers' last hidden state
to float32 rounding (see tests/model/test_encoder.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import packing
from .attention import GatherRows, attention_with_dropout, keep_probabilities, recomputed

SUPPORTED_ARCHITECTURES = ("bert", "mpnet")
_ACTIVATIONS = {
    "gelu": lambda x: F.gelu(x),
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
}


@dataclass(frozen=True)
class EncoderConfig:
    architecture: str  # "bert" or "mpnet"
    vocab_size: int
    hidden_size: int  # D
    num_layers: int
    num_heads: int  # H
    intermediate_size: int  # width of the feed-forward block
    max_positions: int  # rows of the position table
    layer_norm_eps: float
    hidden_dropout: float  # after embeddings, attention output and feed-forward output
    attention_dropout: float  # on attention probabilities
    activation: str = "gelu"
    type_vocab_size: int = 0  # BERT token types; 0 for MPNet
    relative_buckets: int = 0  # MPNet relative-bias buckets; 0 for BERT
    pad_token_id: int = 0

    @classmethod
    def from_hf(cls, hf: dict) -> EncoderConfig | None:
        """The config for a Hugging Face config.json dict, or None when this module cannot run that model."""
        arch = hf.get("model_type")
        if not isinstance(arch, str) or not isinstance(hf.get("hidden_act", "gelu"), str):
            return None
        if arch not in SUPPORTED_ARCHITECTURES or hf.get("hidden_act", "gelu") not in _ACTIVATIONS:
            return None
        if arch == "bert" and hf.get("position_embedding_type", "absolute") != "absolute":
            return None
        if hf.get("is_decoder") or hf.get("add_cross_attention"):
            return None
        sizes = {"vocab_size": (1, 10_000_000), "hidden_size": (1, 1 << 16), "num_hidden_layers": (1, 1024),
                 "num_attention_heads": (1, 1024), "intermediate_size": (1, 1 << 18),
                 "max_position_embeddings": (2, 1 << 20)}
        for key, (low, high) in sizes.items():
            value = hf.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{key} is {value!r}; a {arch} config needs an integer from {low} to {high}")
        for key, low, high in (("layer_norm_eps", 0.0, 1.0), ("hidden_dropout_prob", 0.0, 1.0),
                               ("attention_probs_dropout_prob", 0.0, 1.0)):
            value = hf.get(key, 1e-12 if key == "layer_norm_eps" else 0.1)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value < high:
                raise ValueError(f"{key} is {value!r}; it must be a number in [{low}, {high})")
        for key, default in (("type_vocab_size", 2), ("relative_attention_num_buckets", 32), ("pad_token_id", 0)):
            value = hf.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1 << 16:
                raise ValueError(f"{key} is {value!r}; it must be a small non-negative integer")
        return cls(
            architecture=arch,
            vocab_size=hf["vocab_size"],
            hidden_size=hf["hidden_size"],
            num_layers=hf["num_hidden_layers"],
            num_heads=hf["num_attention_heads"],
            intermediate_size=hf["intermediate_size"],
            max_positions=hf["max_position_embeddings"],
            layer_norm_eps=hf.get("layer_norm_eps", 1e-12),
            hidden_dropout=hf.get("hidden_dropout_prob", 0.1),
            attention_dropout=hf.get("attention_probs_dropout_prob", 0.1),
            activation=hf.get("hidden_act", "gelu"),
            type_vocab_size=hf.get("type_vocab_size", 2) if arch == "bert" else 0,
            relative_buckets=hf.get("relative_attention_num_buckets", 32) if arch == "mpnet" else 0,
            # transformers' MPNetEmbeddings hard-codes padding_idx = 1 for its position arithmetic
            pad_token_id=1 if arch == "mpnet" else hf.get("pad_token_id", 0),
        )

    def __post_init__(self):
        if self.hidden_size % self.num_heads != 0:
            raise ValueError(f"hidden size {self.hidden_size} is not a multiple of the {self.num_heads} heads")
        if self.architecture == "bert" and self.type_vocab_size < 1:
            raise ValueError("type_vocab_size is 0; a bert config needs at least one token type")
        if self.architecture == "mpnet" and self.relative_buckets < 2:
            raise ValueError("relative_attention_num_buckets must be at least 2")

    @property
    def usable_positions(self) -> int:
        """The longest sequence the position table serves: MPNet's positions start at pad_token_id + 1 = 2."""
        return self.max_positions - (self.pad_token_id + 1 if self.architecture == "mpnet" else 0)


def relative_position_buckets(length: int, num_buckets: int = 32, max_distance: int = 128, device=None):
    """(L, L) bucket index of the relative position j - i, as in MPNet/T5 (bidirectional)."""
    position = torch.arange(length, device=device)
    relative = position[None, :] - position[:, None]  # j - i
    n = -relative
    half = num_buckets // 2
    bucket = (n < 0).long() * half  # the upper half of the buckets is for keys after the query
    n = n.abs()
    max_exact = half // 2
    # log-spaced buckets for distances >= max_exact; clamp(min=1) only keeps log() finite where unused
    log_ratio = torch.log(n.clamp(min=1).float() / max_exact) / math.log(max_distance / max_exact)
    large = (max_exact + (log_ratio * (half - max_exact)).long()).clamp(max=half - 1)
    return bucket + torch.where(n < max_exact, n, large)


class SelfAttention(nn.Module):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.num_heads = config.num_heads
        self.dropout = config.attention_dropout
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)  # [W_q; W_k; W_v]
        self.out = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, packed: list | None = None,
                recompute: bool = True) -> torch.Tensor:
        """softmax(q kᵀ / √d_head + mask) v per head, then the output projection. x is (B, L, D); or, with packed
        (a list of (packing.Group, its attention mask)), the real tokens only (T, D): the projections run on T rows
        and attention on each length group's own padded view, with the group's mask. recompute: in training, the
        probabilities are computed again in backward rather than kept (embedder/model/attention.py)."""
        qkv = self.qkv(x)  # [q; k; v]
        if packed is None:
            return self.out(self._attend(qkv, mask, *x.shape[:2], recompute))
        parts = qkv.split([group.end - group.start for group, _ in packed]) if len(packed) > 1 else [qkv]
        contexts = []
        for (group, group_mask), part in zip(packed, parts):
            view = part.new_zeros(group.count * group.length, part.shape[1]).index_copy_(0, group.index, part)
            context = self._attend(view, group_mask, group.count, group.length, recompute)
            contexts.append(GatherRows.apply(context.reshape(group.count * group.length, -1), group.index))
        return self.out(torch.cat(contexts) if len(contexts) > 1 else contexts[0])  # (T, D)

    def _attend(self, qkv: torch.Tensor, mask: torch.Tensor, B: int, L: int, recompute: bool) -> torch.Tensor:
        """(B, L, D) attention context from the [q; k; v] projections of a padded (B, L) view."""
        D = qkv.shape[-1] // 3
        # -> 3 x (B, H, L, d_head)
        q, k, v = qkv.view(B, L, 3, self.num_heads, D // self.num_heads).permute(2, 0, 3, 1, 4)
        dropout = self.dropout if self.training else 0.0
        if dropout:
            attend = attention_with_dropout if q.device.type == "cpu" else F.scaled_dot_product_attention
            context = recomputed(attend, q, k, v, mask, dropout) if recompute and torch.is_grad_enabled() \
                else attend(q, k, v, mask, dropout)
        else:
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, L, d_head)
        return context.transpose(1, 2).reshape(B, L, D)


class Layer(nn.Module):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        D = config.hidden_size
        self.attn = SelfAttention(config)
        self.attn_norm = nn.LayerNorm(D, eps=config.layer_norm_eps)
        self.ffn_in = nn.Linear(D, config.intermediate_size)
        self.ffn_out = nn.Linear(config.intermediate_size, D)
        self.ffn_norm = nn.LayerNorm(D, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)
        self.activation = _ACTIVATIONS[config.activation]

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, packed: list | None = None,
                recompute: bool = True) -> torch.Tensor:
        """Post-LN block: h = LN(x + attn(x)); LN(h + W_out act(W_in h)). x: (B, L, D), or (T, D) with packed."""
        h = self.attn_norm(x + self.dropout(self.attn(x, mask, packed, recompute)))
        return self.ffn_norm(h + self.dropout(self.ffn_out(self.activation(self.ffn_in(h)))))


class Encoder(nn.Module):
    """token ids (B, L) + attention mask (B, L) -> last hidden state (B, L, D)."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        D = config.hidden_size
        self.tokens = nn.Embedding(config.vocab_size, D)
        self.positions = nn.Embedding(config.max_positions, D)
        self.token_types = nn.Embedding(config.type_vocab_size, D) if config.type_vocab_size else None
        self.embed_norm = nn.LayerNorm(D, eps=config.layer_norm_eps)
        self.embed_dropout = nn.Dropout(config.hidden_dropout)
        self.layers = nn.ModuleList(Layer(config) for _ in range(config.num_layers))
        self.relative_bias = nn.Embedding(config.relative_buckets, config.num_heads) if config.relative_buckets else None

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    def position_ids(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, L) position of each token: 0…L-1 for BERT; for MPNet non-pad tokens counted from pad_id + 1."""
        if self.config.architecture == "mpnet":
            is_token = (input_ids != self.config.pad_token_id).long()
            return torch.cumsum(is_token, dim=1) * is_token + self.config.pad_token_id
        return torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)

    def embed(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None,
              position_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Token (+ token type) + position embeddings, LayerNorm, dropout; ids of any shape (the packed path
        gives the real tokens' ids and positions as (T,))."""
        if position_ids is None:
            position_ids = self.position_ids(input_ids)
        x = self.tokens(input_ids)
        if self.token_types is not None:
            x = x + self.token_types(token_type_ids if token_type_ids is not None else torch.zeros_like(input_ids))
        return self.embed_dropout(self.embed_norm(x + self.positions(position_ids)))

    def recompute_attention(self, views: list[tuple[int, int]], device: torch.device) -> bool:
        """Whether attention over these padded (B, L) views is recomputed in backward: on a GPU always, on the CPU
        when keeping the probabilities of all layers would exceed attention.KEPT_PROBABILITIES_BYTES."""
        if device.type != "cpu":
            return True
        dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else self.embed_norm.weight.dtype
        return not keep_probabilities(views, self.config.num_heads, self.config.num_layers, dtype)

    def attention_mask(self, attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """SDPA mask: boolean (B, 1, 1, L) key mask for BERT; additive float (B, H, L, L) bias + mask for MPNet."""
        keep = attention_mask.bool()[:, None, None, :]
        if self.relative_bias is None:
            return keep
        L = attention_mask.shape[1]
        buckets = relative_position_buckets(L, self.config.relative_buckets, device=attention_mask.device)
        bias = self.relative_bias(buckets).permute(2, 0, 1).to(dtype)  # (H, L, L), contiguous after masking
        return torch.where(keep, bias[None], float("-inf"))  # one pass forward and backward

    def forward(self, input_ids, attention_mask, token_type_ids=None,
                packed: bool | packing.Plan = True) -> torch.Tensor:
        """Last hidden state (B, L, D). packed: run the projections, feed-forward blocks and LayerNorms on the real
        tokens only (padding is 20-45 % of a training batch) and attention per length group (embedder/model/packing.py);
        padding rows come out as zeros. A packing.Plan is the plan made on the host (nothing is then read back
        from the device); True makes it here from the mask (a copy back to the host when the mask is on a GPU);
        False is the plain padded computation (the same numbers up to float rounding). In training, attention
        probabilities are kept for backward while they fit the budget of embedder/model/attention.py, else
        recomputed in backward (always on a GPU)."""
        if packed is True:
            packed = packing.plan(attention_mask, packing.max_groups(input_ids.device))
        if packed is False or packed.dense:
            x = self.embed(input_ids, token_type_ids)
            mask = self.attention_mask(attention_mask, x.dtype)
            recompute = self.recompute_attention([tuple(input_ids.shape)], input_ids.device)
            for layer in self.layers:
                x = layer(x, mask, None, recompute)
            return x
        B, L = input_ids.shape
        dtype = self.embed_norm.weight.dtype
        positions = packed.positions
        groups = [(group, self.attention_mask(group.keep, dtype)) for group in packed.groups]
        x = self.embed(input_ids.reshape(-1)[positions],  # (T, D): the real tokens only
                       token_type_ids.reshape(-1)[positions] if token_type_ids is not None else None,
                       self.position_ids(input_ids).reshape(-1)[positions])
        recompute = self.recompute_attention([(group.count, group.length) for group in packed.groups],
                                             input_ids.device)
        for layer in self.layers:
            x = layer(x, None, groups, recompute)
        return x.new_zeros(B * L, x.shape[1]).index_copy_(0, positions, x).view(B, L, -1)
