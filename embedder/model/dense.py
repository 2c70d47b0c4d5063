"""Dense: sentence-transformers' Dense module, a linear layer with an activation on the sentence embedding.

    e' = act(W e + b)                      (B, in_features) -> (B, out_features)
    e' = act(W e + b) + R e                with use_residual (R = I when in_features == out_features)

`act` is a torch.nn module named in the folder's config by its class path, as ST saves it
("torch.nn.modules.linear.Identity", "torch.nn.modules.activation.Tanh"); a missing name means Tanh, ST's
default. Only torch's own modules are built (ST does the same without trust_remote_code). EmbeddingGemma chains two
(768 -> 3072 -> 768, Identity, no bias) between Pooling and Normalize.

Folder layout (ST's, which 2.7 to 6.x load): `{i}_Dense/config.json` with in_features, out_features, bias,
activation_function (and use_residual only when true), and `{i}_Dense/model.safetensors` holding `linear.weight`,
`linear.bias`, `residual.weight` (an older folder may hold pytorch_model.bin instead).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch
from torch import nn

from ..errors import UserError
from . import st_format, weights

DEFAULT_ACTIVATION = "torch.nn.modules.activation.Tanh"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def activation(name: str, source: Path) -> nn.Module:
    """The torch.nn module class named `name` (a torch class path), built without arguments; UserError naming
    `source` for anything else."""
    module_path, _, class_name = name.rpartition(".")
    try:
        if not name.startswith("torch."):
            raise ImportError
        cls = getattr(importlib.import_module(module_path), class_name)
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise ImportError
        return cls()
    except (ImportError, AttributeError, TypeError, ValueError):
        raise UserError(f"{source}: activation_function {name!r} is not a torch.nn module class; use one such as "
                        f"torch.nn.modules.linear.Identity or {DEFAULT_ACTIVATION}") from None


class Dense(nn.Module):
    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 activation_function: str = DEFAULT_ACTIVATION,
                 use_residual: bool = False, source: Path = Path("Dense")):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.bias, self.use_residual = bias, use_residual
        self.activation_name = activation_function
        self.activation_function = activation(activation_function, source)
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        self.residual = nn.Linear(in_features, out_features, bias=False) \
            if use_residual and in_features != out_features else None

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        out = self.activation_function(self.linear(embeddings))
        if self.use_residual:
            out = out + (self.residual(embeddings) if self.residual is not None else embeddings)
        return out

    def config(self) -> dict:
        """The module's config.json, as ST writes it (use_residual only when true, so older ST versions load it)."""
        config = {"in_features": self.in_features, "out_features": self.out_features, "bias": self.bias,
                  "activation_function": self.activation_name}
        return {**config, "use_residual": True} if self.use_residual else config

    @classmethod
    def load(cls, folder: Path) -> Dense:
        """The Dense module saved in `folder` (its config.json and weights), every value checked; the
        weights held in float32."""
        config_file = folder / CONFIG_FILE
        if not config_file.is_file():
            raise UserError(f"{config_file} is missing; the Dense module needs it")
        config = st_format.read_json(config_file, dict)
        for key in ("module_input_name", "module_output_name"):
            if config.get(key) not in (None, "sentence_embedding"):
                raise UserError(f"{config_file}: {key} {config[key]!r}; embedder runs Dense modules on the "
                                "sentence embedding only")
        sizes = [config.get(key) for key in ("in_features", "out_features")]
        if not all(isinstance(n, int) and not isinstance(n, bool) and 0 < n <= 1 << 20 for n in sizes):
            raise UserError(f"{config_file}: in_features/out_features {sizes} must be positive integers; repair or "
                            "re-export the model folder")
        name = config.get("activation_function", DEFAULT_ACTIVATION)
        if not isinstance(name, str):
            raise UserError(f"{config_file}: activation_function {name!r} is not a class path; repair the file")
        module = cls(*sizes, bias=bool(config.get("bias", True)), activation_function=name,
                     use_residual=bool(config.get("use_residual", False)), source=config_file)
        state = weights.read_checkpoint(folder)  # model.safetensors, or an older folder's pytorch_model.bin
        expected = module.state_dict()
        if set(state) != set(expected) or any(state[k].shape != expected[k].shape for k in expected):
            raise UserError(f"{folder}: the weights ({sorted(state)}) do not match config.json "
                            f"({', '.join(f'{k} {tuple(v.shape)}' for k, v in expected.items())}); repair or "
                            "re-export the model folder")
        module.load_state_dict({k: v.float() for k, v in state.items()})
        return module

    def files(self) -> dict:
        """This module's files as ST writes them: {file name: JSON value (config) or tensors (weights)}."""
        tensors = {k: v.detach().float().contiguous().cpu() for k, v in self.state_dict().items()}
        return {CONFIG_FILE: self.config(), WEIGHTS_FILE: tensors}


__all__ = ["DEFAULT_ACTIVATION", "Dense", "activation"]
