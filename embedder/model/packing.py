"""Unpadded ("packed") training batches: the real tokens of a padded batch, and attention over length groups.

A padded batch (B, L) spends work on padding. The packed path keeps only the T real tokens as rows (T, D) for
everything that works token by token (projections, feed-forward blocks, LayerNorms). Attention needs a sequence
view; it runs on padded views again, but one per *length group*: the sequences sorted by length and cut into at
most `max_groups` runs, each padded only to its own longest. Attention's work is Σ_g n_g · L_g² (score matmuls,
softmax, dropout) instead of B · L²: for passages of 6-384 tokens (the default data) about a third.

The groups are chosen by dynamic programming over the sorted lengths l_1 ≤ … ≤ l_B:

    cost(k groups) = min over cuts of Σ_g n_g · (max length in g)²

and the fewest groups whose cost is within 10 % of the best with `max_groups` are kept (each group costs a few
more operator calls). Rows of the packed tensor are ordered group by group, sequence by sequence, token by token;
`group.index` places a group's rows in its own (n_g · L_g) padded view.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

MAX_GROUPS = 4  # on the CPU; one group (the plain padded view) on a GPU, where each group is more kernel launches
GOOD_ENOUGH = 1.10  # a split into fewer groups is kept when its attention cost is within 10 % of the best


@dataclass(frozen=True)
class Group:
    """One length group: rows [start, end) of the packed tensor, their places `index` in the (count · length)
    padded view, and that view's attention mask (as Encoder.attention_mask makes it)."""
    start: int
    end: int
    index: torch.Tensor
    count: int
    length: int
    mask: torch.Tensor


def length_groups(lengths: list[int], max_groups: int = MAX_GROUPS) -> list[list[int]]:
    """The sequences (by position in `lengths`) in length groups, shortest first (see the module docstring)."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    sorted_lengths = [lengths[i] for i in order]
    n = len(order)
    # best[k][j]: the cheapest cost of the first j sequences in k groups; cut[k][j]: where its last group starts
    best = [[0.0] + [float("inf")] * n]
    cut = [[0] * (n + 1)]
    for k in range(1, max(1, min(max_groups, n)) + 1):
        row, cuts = [float("inf")] * (n + 1), [0] * (n + 1)
        row[0] = 0.0
        for j in range(1, n + 1):
            for i in range(k - 1, j):  # the last group holds sequences i..j-1
                cost = best[k - 1][i] + (j - i) * sorted_lengths[j - 1] ** 2
                if cost < row[j]:
                    row[j], cuts[j] = cost, i
        best.append(row)
        cut.append(cuts)
    target = min(best[k][n] for k in range(1, len(best)))
    groups = next(k for k in range(1, len(best)) if best[k][n] <= GOOD_ENOUGH * target)
    bounds, j = [], n
    for k in range(groups, 0, -1):
        bounds.append((cut[k][j], j))
        j = cut[k][j]
    return [order[i:j] for i, j in reversed(bounds)]


def pack(keep: torch.Tensor, make_mask, max_groups: int) -> tuple[torch.Tensor, list[Group]]:
    """For a (B, L) boolean mask of real tokens: the flat (B · L) positions of the real tokens in packed order, and
    the length groups. A sequence's length is the span up to its last real token (padding is on the right for the
    seeds' tokenizers, where it is the token count). make_mask(keep (n, L_g)) -> that view's attention mask."""
    B, L = keep.shape
    lengths = (keep * torch.arange(1, L + 1, device=keep.device)).amax(1)
    positions, groups, start = [], [], 0
    for rows in length_groups(lengths.tolist(), max_groups):
        rows_tensor = torch.tensor(rows, device=keep.device)
        length = int(lengths[rows_tensor].max())
        within = keep[rows_tensor, :length]  # (n, L_g)
        count = len(rows)
        flat = (rows_tensor[:, None] * L + torch.arange(length, device=keep.device)[None])[within]
        local = within.flatten().nonzero().squeeze(1)
        positions.append(flat)
        groups.append(Group(start, start + len(flat), local, count, length, make_mask(within)))
        start += len(flat)
    return torch.cat(positions), groups


__all__ = ["GOOD_ENOUGH", "Group", "MAX_GROUPS", "length_groups", "pack"]
