"""Checkpoint names <-> `embedder.encoder.Encoder` parameter names, in both directions.

One table per architecture maps each Hugging Face tensor name to ours; `{}` stands for the layer index. A name
with a part index (q, k, v) is one third of the fused `attn.qkv` projection, stacked in that order. Loading is
strict: every parameter of the encoder must be filled, with the right shape, and every checkpoint tensor must be
either used or set aside as a pass-through (pooler, position_ids buffer), which `export_state_dict` writes back
unchanged so an exported folder holds everything the checkpoint held.

`read_checkpoint` reads a folder's weight files (safetensors, sharded safetensors whose shard names must stay in the
folder, or a .bin through torch.load(weights_only=True)); `check_finite` refuses NaN/inf weights.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from torch import nn

from ..errors import UserError
from . import st_format
from .encoder import Encoder

_INITS = ("normal_", "uniform_", "kaiming_uniform_", "ones_", "zeros_")  # what Linear/Embedding/LayerNorm call


@contextlib.contextmanager
def no_random_init():
    """Modules built inside skip their random initialisation: their weights are loaded right after. (On the meta
    device the initialisers run Python meta kernels whose first use imports torch._dynamo: 1.2 s at start-up.)"""
    saved = {name: getattr(nn.init, name) for name in _INITS}
    for name in _INITS:
        setattr(nn.init, name, lambda tensor, *args, **kwargs: tensor)
    try:
        yield
    finally:
        for name, function in saved.items():
            setattr(nn.init, name, function)


_LAYER = "encoder.layer.{}."
_FEED_FORWARD = {  # the same names in BERT and MPNet
    _LAYER + "intermediate.dense.weight": "layers.{}.ffn_in.weight",
    _LAYER + "intermediate.dense.bias": "layers.{}.ffn_in.bias",
    _LAYER + "output.dense.weight": "layers.{}.ffn_out.weight",
    _LAYER + "output.dense.bias": "layers.{}.ffn_out.bias",
    _LAYER + "output.LayerNorm.weight": "layers.{}.ffn_norm.weight",
    _LAYER + "output.LayerNorm.bias": "layers.{}.ffn_norm.bias",
}
_TABLES = {
    "bert": {
        "embeddings.word_embeddings.weight": "tokens.weight",
        "embeddings.position_embeddings.weight": "positions.weight",
        "embeddings.token_type_embeddings.weight": "token_types.weight",
        "embeddings.LayerNorm.weight": "embed_norm.weight",
        "embeddings.LayerNorm.bias": "embed_norm.bias",
        _LAYER + "attention.self.query.weight": ("layers.{}.attn.qkv.weight", 0),
        _LAYER + "attention.self.query.bias": ("layers.{}.attn.qkv.bias", 0),
        _LAYER + "attention.self.key.weight": ("layers.{}.attn.qkv.weight", 1),
        _LAYER + "attention.self.key.bias": ("layers.{}.attn.qkv.bias", 1),
        _LAYER + "attention.self.value.weight": ("layers.{}.attn.qkv.weight", 2),
        _LAYER + "attention.self.value.bias": ("layers.{}.attn.qkv.bias", 2),
        _LAYER + "attention.output.dense.weight": "layers.{}.attn.out.weight",
        _LAYER + "attention.output.dense.bias": "layers.{}.attn.out.bias",
        _LAYER + "attention.output.LayerNorm.weight": "layers.{}.attn_norm.weight",
        _LAYER + "attention.output.LayerNorm.bias": "layers.{}.attn_norm.bias",
        **_FEED_FORWARD,
    },
    "mpnet": {
        "embeddings.word_embeddings.weight": "tokens.weight",
        "embeddings.position_embeddings.weight": "positions.weight",
        "embeddings.LayerNorm.weight": "embed_norm.weight",
        "embeddings.LayerNorm.bias": "embed_norm.bias",
        "encoder.relative_attention_bias.weight": "relative_bias.weight",
        _LAYER + "attention.attn.q.weight": ("layers.{}.attn.qkv.weight", 0),
        _LAYER + "attention.attn.q.bias": ("layers.{}.attn.qkv.bias", 0),
        _LAYER + "attention.attn.k.weight": ("layers.{}.attn.qkv.weight", 1),
        _LAYER + "attention.attn.k.bias": ("layers.{}.attn.qkv.bias", 1),
        _LAYER + "attention.attn.v.weight": ("layers.{}.attn.qkv.weight", 2),
        _LAYER + "attention.attn.v.bias": ("layers.{}.attn.qkv.bias", 2),
        _LAYER + "attention.attn.o.weight": "layers.{}.attn.out.weight",
        _LAYER + "attention.attn.o.bias": "layers.{}.attn.out.bias",
        _LAYER + "attention.LayerNorm.weight": "layers.{}.attn_norm.weight",
        _LAYER + "attention.LayerNorm.bias": "layers.{}.attn_norm.bias",
        **_FEED_FORWARD,
    },
}
# Heads of other checkpoint classes (BertForMaskedLM, MPNetForMaskedLM…): not part of an embedding model.
_DROPPED_PREFIXES = ("cls.", "lm_head.")


def _expand(architecture: str, num_layers: int) -> dict[str, tuple[str, int | None]]:
    """The table with `{}` filled in: hf name -> (our name, part index or None)."""
    out = {}
    for hf_name, ours in _TABLES[architecture].items():
        ours, part = ours if isinstance(ours, tuple) else (ours, None)
        for i in range(num_layers) if "{}" in hf_name else [None]:
            out[hf_name.format(i)] = (ours.format(i), part)
    return out


def _strip_prefix(state: dict[str, torch.Tensor], architecture: str) -> dict[str, torch.Tensor]:
    """Checkpoints saved from a *ForMaskedLM class prefix the backbone with 'bert.' or 'mpnet.'."""
    prefix = architecture + "."
    if any(k.startswith(prefix + "embeddings.") for k in state):
        return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}
    return state


def load_state_dict(encoder: Encoder, hf_state: dict[str, torch.Tensor], assign: bool = False) -> dict[str, torch.Tensor]:
    """Copy the checkpoint into `encoder` (as float32); returns the pass-through tensors. Raises ValueError on a
    missing tensor or a shape mismatch. assign=True hands the (float32) tensors to the module instead of copying,
    for an encoder built on the meta device."""
    cfg = encoder.config
    hf_state = _strip_prefix(hf_state, cfg.architecture)
    table = _expand(cfg.architecture, cfg.num_layers)
    parts: dict[str, dict[int | None, torch.Tensor]] = {}
    passthrough = {}
    for name, tensor in hf_state.items():
        if name in table:
            ours, part = table[name]
            parts.setdefault(ours, {})[part] = tensor
        elif not name.startswith(_DROPPED_PREFIXES):
            passthrough[name] = tensor
    params = encoder.state_dict()
    missing = [name for name in params if name not in parts]
    if missing:
        raise ValueError(f"checkpoint lacks {len(missing)} tensors of the {cfg.architecture} encoder, e.g. {missing[0]}")
    new_state = {}
    for ours, pieces in parts.items():
        tensor = pieces[None] if None in pieces else torch.cat([pieces[i] for i in range(3)], dim=0)
        if tensor.shape != params[ours].shape:
            raise ValueError(f"checkpoint tensor for {ours} has shape {tuple(tensor.shape)}, "
                             f"expected {tuple(params[ours].shape)}")
        if not tensor.is_floating_point():
            raise ValueError(f"checkpoint tensor for {ours} has dtype {tensor.dtype}, expected floating point")
        new_state[ours] = tensor.float()  # fp32 master weights whatever the stored dtype
    encoder.load_state_dict(new_state, strict=True, assign=assign)
    return passthrough


def export_state_dict(encoder: Encoder, passthrough: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The encoder's weights under Hugging Face names (fused qkv split back), plus the pass-through tensors."""
    cfg = encoder.config
    ours = {k: v.detach() for k, v in encoder.state_dict().items()}
    out = {}
    for hf_name, (name, part) in _expand(cfg.architecture, cfg.num_layers).items():
        tensor = ours[name] if part is None else ours[name].chunk(3, dim=0)[part]
        out[hf_name] = tensor.contiguous().cpu()
    for name, tensor in passthrough.items():
        out.setdefault(name, tensor.contiguous().cpu())
    return out


def read_checkpoint(folder: Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint folder: safetensors first (shard names must stay inside the folder); a .bin only
    through torch.load(weights_only=True)."""
    import pickle

    from safetensors import SafetensorError
    from safetensors.torch import load_file

    single, index, pickled = (folder / st_format.WEIGHTS_FILE, folder / st_format.WEIGHTS_INDEX_FILE,
                              folder / st_format.PICKLED_WEIGHTS_FILE)
    culprit = single if single.is_file() else index if index.is_file() else pickled
    try:
        if single.is_file():
            return load_file(str(single))
        if index.is_file():
            weight_map = st_format.read_json(index, dict).get("weight_map")
            if not isinstance(weight_map, dict) or not weight_map:
                raise UserError(f"{index} has no weight_map object; re-download or re-export the model")
            shards = sorted({st_format.inside(folder, name, index) for name in weight_map.values()})
            for shard in shards:
                culprit = shard
                if not shard.is_file():
                    raise UserError(f"{index} names shard {shard.name}, which is missing; re-download the model")
            return {k: v for shard in shards for k, v in load_file(str(shard)).items()}
        if pickled.is_file():
            state = torch.load(pickled, map_location="cpu", weights_only=True)
            if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
                raise UserError(f"{pickled} holds no tensor dictionary; re-download or re-export the model")
            return state
    except (SafetensorError, OSError, RuntimeError, ValueError, KeyError, TypeError, AttributeError,
            pickle.UnpicklingError, EOFError) as err:
        raise UserError(f"{culprit} could not be read as weights ({str(err).splitlines()[0][:120] if str(err) else type(err).__name__}); "
                        "re-download or re-export the model") from None
    raise UserError(f"{folder} holds no weights (model.safetensors or pytorch_model.bin); "
                    "pass a complete model folder")


def check_finite(backbone: nn.Module, folder: Path) -> None:
    """UserError when a weight of the model is NaN or infinite (a damaged download or a diverged run)."""
    for name, tensor in backbone.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise UserError(f"{folder}: weight {name} holds NaN or infinite values; the model is damaged, "
                            "re-download or re-export it")
