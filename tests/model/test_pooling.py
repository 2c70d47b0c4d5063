"""Every pooling mode against sentence-transformers' Pooling on the same token embeddings, with and without
include_prompt, and several modes at once. Also Normalize against F.normalize's definition by hand."""

import pytest
import torch
from sentence_transformers.models import Pooling as STPooling

from embedder.model.normalize import Normalize
from embedder.model.pooling import POOLING_MODES, Pooling


def _features(B=5, L=11, D=16):
    lengths = torch.tensor([11, 1, 4, 7, 2])
    mask = (torch.arange(L)[None, :] < lengths[:, None]).long()
    return torch.randn(B, L, D), mask


@pytest.mark.parametrize("mode", POOLING_MODES + (("cls", "max", "mean"), ("mean_sqrt_len_tokens", "lasttoken")))
@pytest.mark.parametrize("include_prompt", [True, False])
def test_pooling_matches_st(mode, include_prompt):
    # several modes are given in the classic order, the only order the classic config can express
    tokens, mask = _features()
    prompt_length = 3
    st = STPooling(16, pooling_mode=mode, include_prompt=include_prompt)
    expected = st({"token_embeddings": tokens, "attention_mask": mask, "prompt_length": prompt_length})
    ours = Pooling(16, mode, include_prompt)
    got = ours(tokens, mask, prompt_length)
    assert got.shape == expected["sentence_embedding"].shape
    rows = slice(None) if include_prompt else [0, 2, 3]  # rows 1 and 4 are all prompt: degenerate for ST too
    assert torch.allclose(got[rows], expected["sentence_embedding"][rows], atol=1e-6)


def test_pooling_by_hand():
    tokens = torch.tensor([[[1.0, 2.0], [3.0, 6.0], [9.0, 9.0]]])  # the third token is padding
    mask = torch.tensor([[1, 1, 0]])
    assert Pooling(2, "mean")(tokens, mask).tolist() == [[2.0, 4.0]]
    assert Pooling(2, "max")(tokens, mask).tolist() == [[3.0, 6.0]]
    assert Pooling(2, "cls")(tokens, mask).tolist() == [[1.0, 2.0]]
    assert Pooling(2, "lasttoken")(tokens, mask).tolist() == [[3.0, 6.0]]
    # weights 1 and 2: (1*1 + 2*3) / 3, (1*2 + 2*6) / 3
    assert torch.allclose(Pooling(2, "weightedmean")(tokens, mask), torch.tensor([[7 / 3, 14 / 3]]))
    assert torch.allclose(Pooling(2, "mean_sqrt_len_tokens")(tokens, mask), torch.tensor([[4.0, 8.0]]) / 2 ** 0.5)


def test_classic_config_round_trip_and_errors():
    pooling = Pooling(8, ("mean", "cls"), include_prompt=False)
    config = pooling.config()
    assert config["pooling_mode_cls_token"] and config["pooling_mode_mean_tokens"]
    assert not config["pooling_mode_max_tokens"] and config["include_prompt"] is False
    again = Pooling.from_config(config)
    assert again.modes == ("cls", "mean") and again.output_dimension == 16
    assert Pooling.from_config({"embedding_dimension": 4, "pooling_mode": "lasttoken"}).modes == ("lasttoken",)
    with pytest.raises(ValueError, match="valid modes"):
        Pooling(8, "median")


def test_normalize_gives_unit_rows():
    x = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    assert torch.allclose(Normalize()(x), torch.tensor([[0.6, 0.8], [0.0, 0.0]]))
