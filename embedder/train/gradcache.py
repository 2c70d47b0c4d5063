"""GradCache (Gao et al. 2021; ST's CachedMultipleNegativesRankingLoss): the loss of a batch of B texts per column
with the activation memory of M ≪ B.

    1. embed every mini-batch of M texts without a graph, remembering the RNG state before each one;
    2. compute the loss on the full batch of (detached) embeddings and its gradient g = ∂loss/∂embeddings;
    3. embed each mini-batch again with a graph, the RNG state restored so dropout draws the same masks, and
       backpropagate the cached gradient: backward(Σ embeddings · g) — the surrogate whose parameter gradient
       equals ∂loss/∂θ by the chain rule.
The loss and gradients equal the uncached ones (up to float rounding, dropout included); the price is one more
forward per step. Under a DistributedDataParallel wrapper, gradients are synchronised only on the last mini-batch.
"""

from __future__ import annotations

import contextlib

import torch


def _rng_state(device: torch.device):
    return (torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None)


def _set_rng_state(state, device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def split(features: dict, size: int) -> list[dict]:
    """A column's features in mini-batches of `size` rows, on the host (each gets its own packing plan there);
    one (empty) mini-batch for no rows, so every process runs the same passes."""
    starts = range(0, max(features["input_ids"].shape[0], 1), size)
    return [{k: v[start:start + size] if torch.is_tensor(v) and v.dim() > 0 else v for k, v in features.items()}
            for start in starts]


def cached_forward_backward(model, mini_batches: list[list[dict]], loss_of_embeddings, autocast,
                            scale_loss=lambda loss: loss, no_sync=contextlib.nullcontext) -> torch.Tensor:
    """Loss of the whole batch, with gradients accumulated in the model; returns the detached loss.

    mini_batches: each column's mini-batches (`split`), on the device; loss_of_embeddings(list of (B, D) tensors)
    -> scalar; scale_loss: the GradScaler's scale(); no_sync: DDP's no_sync (all but the last backward skip the
    all-reduce). Nothing is read back from the device: a non-finite loss gives non-finite gradients, and the
    caller skips that update on the device (embedder/train/trainer.py)."""
    device = mini_batches[0][0]["input_ids"].device
    states, cached = [], []
    with torch.no_grad():
        for column in mini_batches:
            pieces = []
            for chunk in column:
                states.append(_rng_state(device))
                with autocast:
                    pieces.append(model(chunk).float())
            cached.append(torch.cat(pieces).requires_grad_(True))
    loss = loss_of_embeddings(cached)
    scale_loss(loss).backward()
    grads = [embeddings.grad for embeddings in cached]
    chunks = []
    for col, column in enumerate(mini_batches):
        start = 0
        for chunk in column:
            chunks.append((col, start, chunk))
            start += chunk["input_ids"].shape[0]
    after = _rng_state(device)
    for index, ((col, start, chunk), state) in enumerate(zip(chunks, states)):
        _set_rng_state(state, device)
        sync = contextlib.nullcontext() if index == len(chunks) - 1 else no_sync()
        with sync:
            with autocast:
                embeddings = model(chunk).float()
            surrogate = (embeddings * grads[col][start:start + embeddings.shape[0]]).sum()
            surrogate.backward()
    _set_rng_state(after, device)
    return loss.detach()
