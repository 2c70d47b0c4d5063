"""Pooling: token embeddings (B, L, D) + attention mask (B, L) -> one sentence embedding (B, D·modes).

Modes, as in sentence-transformers' Pooling (m = the mask, 1 for a real token, t_i = token embedding i):
- cls: t at the first unmasked position.          - lasttoken: t at the last unmasked position.
- mean: Σ m_i t_i / max(Σ m_i, 1e-9).             - mean_sqrt_len_tokens: Σ m_i t_i / sqrt(max(Σ m_i, 1e-9)).
- max: elementwise max over unmasked positions.   - weightedmean: Σ w_i m_i t_i / max(Σ w_i m_i, 1e-9),
                                                    w_i = i + 1 (position weight, from 1).
Several modes concatenate in ST's fixed order (cls, max, mean, mean_sqrt_len_tokens, weightedmean, lasttoken),
the order the classic config's booleans imply. include_prompt=False masks out the first `prompt_length`
tokens (the prompt, [CLS] included) before pooling, keeping the others' position weights. Padding is on the right.
Half-precision inputs are summed in float32, as ST does.
"""

from __future__ import annotations

import torch
from torch import nn

POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
# The classic (ST 2.x-5.x) config keys, in concatenation order.
_CLASSIC_KEYS = {
    "cls": "pooling_mode_cls_token",
    "max": "pooling_mode_max_tokens",
    "mean": "pooling_mode_mean_tokens",
    "mean_sqrt_len_tokens": "pooling_mode_mean_sqrt_len_tokens",
    "weightedmean": "pooling_mode_weightedmean_tokens",
    "lasttoken": "pooling_mode_lasttoken",
}


class Pooling(nn.Module):
    def __init__(self, dimension: int, modes: str | tuple[str, ...] | list[str] = "mean", include_prompt: bool = True):
        super().__init__()
        modes = (modes,) if isinstance(modes, str) else tuple(modes)
        for mode in modes:
            if mode not in POOLING_MODES:
                raise ValueError(f"unknown pooling mode {mode!r}; valid modes: {', '.join(POOLING_MODES)}")
        if not modes:
            raise ValueError(f"no pooling mode given; valid modes: {', '.join(POOLING_MODES)}")
        self.dimension = dimension
        self.modes = tuple(m for m in POOLING_MODES if m in modes)
        self.include_prompt = include_prompt

    @property
    def output_dimension(self) -> int:
        return self.dimension * len(self.modes)

    @classmethod
    def from_config(cls, config: dict) -> Pooling:
        """Reads the classic boolean keys and ST 6's `pooling_mode` alike."""
        dimension = config.get("word_embedding_dimension", config.get("embedding_dimension"))
        if "pooling_mode" in config:
            modes = config["pooling_mode"]
        else:
            modes = tuple(m for m, key in _CLASSIC_KEYS.items() if config.get(key)) or ("mean",)
        return cls(dimension, modes, config.get("include_prompt", True))

    def config(self) -> dict:
        """The classic 1_Pooling/config.json, which ST 3.x to 6.x all read."""
        return {"word_embedding_dimension": self.dimension,
                **{key: mode in self.modes for mode, key in _CLASSIC_KEYS.items()},
                "include_prompt": self.include_prompt}

    def forward(self, token_embeddings: torch.Tensor, attention_mask: torch.Tensor,
                prompt_length: int | None = None) -> torch.Tensor:
        if prompt_length and not self.include_prompt:
            attention_mask = attention_mask.clone()
            attention_mask[:, :prompt_length] = 0
        B, L, D = token_embeddings.shape
        accumulate = torch.float32 if token_embeddings.dtype in (torch.float16, torch.bfloat16) else token_embeddings.dtype
        mask = attention_mask.unsqueeze(-1).to(token_embeddings.dtype)  # (B, L, 1)
        pooled = []
        for mode in self.modes:
            if mode == "cls":
                first = attention_mask.to(torch.int).argmax(dim=1)  # (B,)
                pooled.append(token_embeddings[torch.arange(B, device=first.device), first])
            elif mode == "max":
                pooled.append(token_embeddings.masked_fill(mask == 0, float("-inf")).max(dim=1).values)
            elif mode in ("mean", "mean_sqrt_len_tokens"):
                total = (token_embeddings * mask).sum(dim=1, dtype=accumulate)
                count = torch.clamp(mask.sum(dim=1, dtype=accumulate), min=1e-9)
                denominator = count if mode == "mean" else torch.sqrt(count)
                pooled.append((total / denominator).to(token_embeddings.dtype))
            elif mode == "weightedmean":
                weights = torch.arange(1, L + 1, device=mask.device, dtype=accumulate).view(1, L, 1)
                weighted_mask = mask.to(accumulate) * weights
                total = (token_embeddings * weighted_mask).sum(dim=1)
                pooled.append((total / torch.clamp(weighted_mask.sum(dim=1), min=1e-9)).to(token_embeddings.dtype))
            elif mode == "lasttoken":
                values, from_end = attention_mask.flip(1).max(dim=1)
                from_end = torch.where(values == 0, L - 1, from_end)
                last = L - from_end - 1
                pooled.append((token_embeddings * mask)[torch.arange(B, device=last.device), last])
        return torch.cat(pooled, dim=-1)
