"""One real Trainer.step traced under FakeTensorMode: tensors with shapes, dtypes and devices but no values.

Anything in the step that reads a value back to the host (`.item()`, `bool(t)`, `.tolist()`, `nonzero()`, boolean
indexing, `int(t.max())` — each a synchronisation on a GPU) raises DataDependentOutputException there, and a
tensor on the wrong device raises FakeTensorDeviceMismatchError. The model is loaded for real on the CPU, then its
parameters are made fake (and moved to `device`, which may be a fake `cuda:0`); the batch is collated for real on
the host, as the training loop does, and only then made fake. Used by tests/train/test_no_host_sync.py (the CPU
build) and tests/fake_cuda/ (the CUDA build on a machine without a GPU).
"""

from __future__ import annotations

import contextlib
import random
import tempfile
from pathlib import Path

import torch
from torch._subclasses.fake_tensor import FakeTensorMode

import embedder
from embedder.data import batching
from embedder.data.formats import PairDataset
from embedder.model.transfer import map_tensors
from embedder.train import distributed
from embedder.train.checkpoints import RunStore
from embedder.train.collator import collate
from embedder.train.config import TrainConfig, resolve
from embedder.train.health import StepHealth
from embedder.train.tracking import BestModelTracker
from embedder.train.trainer import Trainer


def pairs(n: int = 12, negatives: bool = False) -> PairDataset:
    """Questions and passages of varied lengths (so batches have padding, and several length groups on the CPU);
    a few passages repeat, so duplicate masks have something to mask."""
    rng = random.Random(5)
    rows = []
    for i in range(n):
        question = f"question {i} about " + " ".join(rng.choice(["rates", "loans", "budgets", "policy"])
                                                     for _ in range(rng.randint(1, 6)))
        passage = f"passage {i % (n - 2)} " + "text " * rng.choice([3, 8, 20, 45])
        row = (question, passage) + ((f"negative {i} " + "other " * rng.randint(2, 30),) if negatives else ())
        rows.append(row)
    columns = ("anchor", "positive") + (("negative_1",) if negatives else ())
    return PairDataset(columns, rows, source="step_trace")


def fake_model(model, mode: FakeTensorMode, device: str):
    """The model's parameters and buffers replaced by fake copies on `device` (call inside `mode`)."""
    for module in model.modules():
        for name, param in list(module._parameters.items()):
            if param is not None:
                module._parameters[name] = torch.nn.Parameter(mode.from_tensor(param).detach().to(device),
                                                              requires_grad=param.requires_grad)
        for name, buffer in list(module._buffers.items()):
            if buffer is not None:
                module._buffers[name] = mode.from_tensor(buffer).to(device)
    return model


class TracedStep:
    """A Trainer on a fake model; `run()` collates a batch on the host and traces one `step` on it."""

    def __init__(self, folder, device: str = "cpu", negatives: bool = False, **settings):
        self.mode = FakeTensorMode()
        model = embedder.load(str(folder), device="cpu")
        self.pairs = pairs(negatives=negatives)
        self.tmp = tempfile.TemporaryDirectory()
        settings = {"batch_size": 6, "matryoshka_dims": None, "eval": (), **settings}
        config = TrainConfig(base=str(folder), train=("unused",), output=str(Path(self.tmp.name) / "model"),
                             **settings)
        with self.mode:
            fake_model(model, self.mode, device)
        # the rest of the set-up is host work (the batch plan, the optimiser's groups), as in a real run
        run_config = resolve(config, model, [self.pairs], [], distributed.Context())
        train_sets = [batching.TokenizedPairs.build(self.pairs, model.tokenizer.encode_unpadded)]
        store = RunStore(Path(self.tmp.name) / "checkpoints")
        tracker = BestModelTracker([], None, False, store, False, distributed.Context(), echo=lambda *a, **k: None)
        self.trainer = Trainer(model, run_config, train_sets, tracker, store, echo=lambda *a, **k: None)
        with self.mode:
            self.trainer.health = StepHealth(model.device, config.max_bad_steps)
        self.model = model.train()  # as Trainer._run sets it: dropout on

    def host_batch(self):
        """The first batch of the run, collated on the host (real tensors), as Trainer._run collates it."""
        trainer = self.trainer
        set_index, rows = trainer.epoch_batches(0)[0]
        return collate(trainer.train_sets[set_index], rows, trainer.encoder, trainer.prompt_lengths,
                       mini_batch_size=trainer.settings.mini_batch_size)

    def run(self, host_batch=None, inner=None):
        """One traced step on `host_batch` (default: the run's first); inner: a context entered inside the fake
        mode (a TorchDispatchMode that logs the ops)."""
        host_batch = host_batch or self.host_batch()
        with self.mode, inner or contextlib.nullcontext():
            batch = map_tensors(host_batch, self.mode.from_tensor).to(self.model.device)
            lr = self.trainer.step(batch)
        return batch, lr

    def close(self):
        self.tmp.cleanup()


__all__ = ["TracedStep", "fake_model", "pairs"]
