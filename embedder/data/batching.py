"""Training batches: the data tokenised once, batches drawn per epoch from (seed, epoch), padded per column.

Batch composition decides the in-batch negatives, so it is never regrouped by length.
- random: a seeded permutation cut into ceil(n / B) batches, the last one kept (ST's default sampler).
- no_duplicates: the same permutation, then each batch is filled in order with rows none of whose texts (in any
  column) is already in the batch; rows that clash wait for a later batch. Every row is used exactly once per
  epoch, batches differ between epochs, and the epoch's batch list — hence its length — is built up front.
Several data sets train together round-robin (ST's multi_dataset_batch_sampler): one batch of each in turn,
stopping when the shortest runs out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .formats import PairDataset

SAMPLERS = ("random", "no_duplicates")


@dataclass
class TokenizedPairs:
    """A pair data set tokenised once: ids[column][row] lists, and a text id per cell for duplicate checks."""
    name: str
    columns: tuple[str, ...]
    ids: list[list[list[int]]]  # [column][row] -> token ids
    text_ids: np.ndarray  # (rows, columns) int: equal texts share an id

    def __len__(self) -> int:
        return len(self.text_ids)

    @classmethod
    def build(cls, pairs: PairDataset, tokenize, query_prompt: str = "", passage_prompt: str = "") -> TokenizedPairs:
        n_cols = len(pairs.columns)
        ids = []
        for col in range(n_cols):
            prompt = query_prompt if col == 0 else passage_prompt
            ids.append(tokenize([prompt + row[col] for row in pairs.rows]))
        vocabulary: dict[str, int] = {}
        text_ids = np.array([[vocabulary.setdefault(text, len(vocabulary)) for text in row] for row in pairs.rows],
                            dtype=np.int64).reshape(len(pairs.rows), n_cols)
        return cls(pairs.source, pairs.columns, ids, text_ids)


def _permutation(n: int, seed: int, epoch: int) -> list[int]:
    generator = torch.Generator().manual_seed(seed + epoch)
    return torch.randperm(n, generator=generator).tolist()


def random_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    order = _permutation(n, seed, epoch)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def no_duplicate_batches(text_ids: np.ndarray, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Batches in which no text repeats (any column), from the seeded permutation: each batch takes, in order,
    the first remaining rows that share no text with it until it is full; skipped rows keep their order for the
    next batch. Linear in the rows: a batch scans only until it is full (skipped rows, rare, are scanned again),
    the remaining rows are a linked list in permutation order."""
    order = _permutation(len(text_ids), seed, epoch)
    cells = text_ids.tolist()
    following = list(range(1, len(order) + 1))  # following[i]: the next remaining position after i
    head, end, left = 0, len(order), len(order)
    batches = []
    while left:
        batch, used = [], set()
        previous, position = None, head
        while position != end and len(batch) < batch_size:
            row = order[position]
            if used.isdisjoint(cells[row]):
                batch.append(row)
                used.update(cells[row])
                if previous is None:
                    head = following[position]
                else:
                    following[previous] = following[position]
            else:
                previous = position
            position = following[position]
        batches.append(batch)
        left -= len(batch)
    return batches


def epoch_batches(datasets: list[TokenizedPairs], batch_size: int, sampler: str, seed: int,
                  epoch: int) -> list[tuple[int, list[int]]]:
    """(dataset index, rows) for every step of an epoch, round-robin over the data sets."""
    per_set = []
    for index, ds in enumerate(datasets):
        if sampler == "no_duplicates":
            per_set.append(no_duplicate_batches(ds.text_ids, batch_size, seed + 1000 * index, epoch))
        else:
            per_set.append(random_batches(len(ds), batch_size, seed + 1000 * index, epoch))
    if len(per_set) == 1:
        return [(0, b) for b in per_set[0]]
    shortest = min(len(b) for b in per_set)
    return [(i, per_set[i][step]) for step in range(shortest) for i in range(len(per_set))]


def duplicate_share(text_ids: np.ndarray, batch_size: int, seed: int = 0, trials: int = 20) -> float:
    """Share of random batches holding a repeated text (any column), estimated over `trials` epochs."""
    hits = total = 0
    for trial in range(trials):
        for batch in random_batches(len(text_ids), batch_size, seed, 10_000 + trial):
            cells = text_ids[batch].ravel()
            hits += len(np.unique(cells)) < len(cells)
            total += 1
    return hits / max(total, 1)


def pad(sequences: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded input_ids and attention_mask (B, L_max) for one column of a batch; (0, 1) for no rows (a
    torchrun process with nothing of a short last batch still runs the step with the others)."""
    length = max((len(s) for s in sequences), default=1)
    ids = np.full((len(sequences), length), pad_id, dtype=np.int64)
    mask = np.zeros((len(sequences), length), dtype=np.int64)
    for row, seq in enumerate(sequences):
        ids[row, :len(seq)] = seq
        mask[row, :len(seq)] = 1
    return {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
