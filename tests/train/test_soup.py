"""The uniform weight average (embedder/train/soup.py) against values worked out by hand."""

import pytest
import torch

from embedder.errors import UserError
from embedder.train.soup import uniform_average


def test_the_average_of_three_states_worked_by_hand():
    a = {"w": torch.tensor([1.0, 2.0]), "b": torch.tensor([0.5], dtype=torch.bfloat16)}
    b = {"w": torch.tensor([3.0, 6.0]), "b": torch.tensor([1.5], dtype=torch.bfloat16)}
    c = {"w": torch.tensor([5.0, 1.0]), "b": torch.tensor([4.0], dtype=torch.bfloat16)}
    soup = uniform_average([a, b, c])
    assert torch.equal(soup["w"], torch.tensor([3.0, 3.0]))  # (1+3+5)/3, (2+6+1)/3
    assert soup["b"].dtype == torch.bfloat16 and float(soup["b"]) == 2.0  # (0.5+1.5+4)/3
    assert uniform_average([a])["w"] is not a["w"] and torch.equal(uniform_average([a])["w"], a["w"])


def test_states_of_other_architectures_are_refused():
    with pytest.raises(UserError, match="member 1 are not one architecture"):
        uniform_average([{"w": torch.zeros(2)}, {"w": torch.zeros(3)}])
    with pytest.raises(UserError, match="'v'"):
        uniform_average([{"w": torch.zeros(2)}, {"v": torch.zeros(2)}])
