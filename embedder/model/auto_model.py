"""transformers' AutoModel as the Transformer module, for architectures without a hand-written encoder
(embedder/model/encoder.py has BERT and MPNet): its last hidden state is the token embeddings. Loading refuses a
folder whose weight file does not cover the architecture its config.json names — every weight left out would
train from its random initialisation — in one line (the pooler, which no sentence embedding uses, aside).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import UserError
from . import st_format


class AutoBackbone(nn.Module):
    """transformers' AutoModel for architectures without a hand-written encoder."""

    def __init__(self, folder: Path):
        super().__init__()
        from transformers import AutoModel  # only for these architectures: transformers' model code loads slowly
        from transformers.utils import logging as hf_logging
        verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()  # its load report is many lines; what matters is said below in one
        hf_logging.disable_progress_bar()
        try:
            self.model, info = AutoModel.from_pretrained(str(folder), dtype=torch.float32, trust_remote_code=False,
                                                         output_loading_info=True)
        finally:
            hf_logging.set_verbosity(verbosity)
            if bars:
                hf_logging.enable_progress_bar()
        self.hidden_size = self.model.config.hidden_size
        # a weight the file does not hold stays at its random initialisation: refuse (the pooler is never used)
        missing = [key for key in info.get("missing_keys", ()) if "pooler." not in key]
        if missing:
            raise UserError(f"{folder / st_format.HF_CONFIG_FILE}: the weights do not fit its architecture "
                            f"({self.model.config.model_type}): {len(missing)} of its weights are not in the weight "
                            f"file (e.g. {sorted(missing)[0]}) and would train from random values; repair config.json "
                            "or pass the model's own folder")

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        return self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state

    def export_state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().contiguous().cpu() for k, v in self.model.state_dict().items()}


__all__ = ["AutoBackbone"]
