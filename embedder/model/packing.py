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
`group.index` places a group's rows in its own (n_g · L_g) padded view. The plan is made on the host, from the
tokenizer's CPU attention mask, before the batch goes to the device: on a GPU, the packed forward and backward then
read nothing back from the device (no synchronisation), and the path is the same on every device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

MAX_GROUPS = 4  # on the CPU; one group (the plain padded view) on a GPU, where each group is more kernel launches
GOOD_ENOUGH = 1.10  # a split into fewer groups is kept when its attention cost is within 10 % of the best


@dataclass(frozen=True)
class Group:
    """One length group: rows [start, end) of the packed tensor, their places `index` in the (count · length)
    padded view, and which entries of that view are real tokens (`keep`, (count, length) boolean: the encoder makes
    the view's attention mask from it, on the device)."""
    start: int
    end: int
    index: torch.Tensor
    count: int
    length: int
    keep: torch.Tensor


@dataclass(frozen=True)
class Plan:
    """How one padded batch (B, L) runs packed: `positions`, the flat (B · L) positions of its real tokens in packed
    order, and its length groups. No groups: no token is padding, and the plain padded computation is the packed
    one. Made on the host from the tokenizer's attention mask (`plan`), so the forward that uses it reads nothing
    back from the device; it travels to the device with the batch (embedder/model/transfer.py)."""
    positions: torch.Tensor | None
    groups: tuple[Group, ...]

    @property
    def dense(self) -> bool:
        return not self.groups


def max_groups(device: torch.device) -> int:
    return MAX_GROUPS if device.type == "cpu" else 1


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


def plan(attention_mask: torch.Tensor, max_groups: int = MAX_GROUPS) -> Plan:
    """The packing plan of a (B, L) attention mask (1 = real token). A sequence's length is the span up to its last
    real token (padding is on the right for the seeds' tokenizers, where it is the token count). The mask is read
    on the host: a mask on a GPU is copied back first (a synchronisation; embedder.model.embedder.Embedder.plan
    makes the plan before the batch goes to the device)."""
    keep = attention_mask.detach().cpu().bool()
    if bool(keep.all()):
        return Plan(None, ())
    B, L = keep.shape
    lengths = (keep * torch.arange(1, L + 1)).amax(1)
    positions, groups, start = [], [], 0
    for rows in length_groups(lengths.tolist(), max_groups):
        rows_tensor = torch.tensor(rows)
        length = int(lengths[rows_tensor].max())
        within = keep[rows_tensor, :length]  # (n, L_g)
        flat = (rows_tensor[:, None] * L + torch.arange(length)[None])[within]
        local = within.flatten().nonzero().squeeze(1)
        positions.append(flat)
        groups.append(Group(start, start + len(flat), local, len(rows), length, within))
        start += len(flat)
    return Plan(torch.cat(positions), tuple(groups))


__all__ = ["GOOD_ENOUGH", "Group", "MAX_GROUPS", "Plan", "length_groups", "max_groups", "plan"]
