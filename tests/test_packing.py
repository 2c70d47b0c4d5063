"""Length groups for packed attention, against hand-computed costs Σ n_g · L_g²."""

import torch

from embedder.packing import length_groups, pack


def test_length_groups_by_hand():
    # sorted 3, 9, 17, 40: one group 4·40² = 6400; two {3,9,17}{40} 3·17² + 40² = 2467; three {3,9}{17}{40}
    # 2·9² + 17² + 40² = 2051; four 9 + 81 + 289 + 1600 = 1979. Three is within 10 % of four (2051 ≤ 2176.9).
    assert length_groups([3, 40, 17, 9]) == [[0, 3], [2], [1]]
    assert length_groups([3, 40, 17, 9], max_groups=2) == [[0, 3, 2], [1]]
    assert length_groups([7, 7, 7]) == [[0, 1, 2]]  # one group when splitting saves nothing
    assert length_groups([5]) == [[0]]
    # 10 % rule: {10,10,10}{11} costs 300 + 121 = 421 against one group's 4·121 = 484 (> 1.1 · 421): split
    assert length_groups([10, 10, 10, 11], max_groups=2) == [[0, 1, 2], [3]]
    # one group 5·104² = 54080 against {100 x 4}{104} 40000 + 10816 = 50816: within 10 % (≤ 55897.6), one group
    assert length_groups([100, 100, 100, 100, 104], max_groups=2) == [[0, 1, 2, 3, 4]]


def test_pack_orders_rows_by_group_and_places_them():
    keep = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.bool)
    positions, groups = pack(keep, lambda within: within, max_groups=2)
    # lengths 3, 5, 1: sorted 1, 3, 5; {1,3}{5}: 2·9 + 25 = 43; {1}{3,5}: 1 + 50 = 51; one group 75
    assert [(g.count, g.length) for g in groups] == [(2, 3), (1, 5)]
    assert positions.tolist() == [10, 0, 1, 2, 5, 6, 7, 8, 9]  # row 2's token, row 0's three, row 1's five
    assert groups[0].index.tolist() == [0, 3, 4, 5] and groups[1].index.tolist() == [0, 1, 2, 3, 4]
    assert groups[0].mask.tolist() == [[True, False, False], [True, True, True]]
