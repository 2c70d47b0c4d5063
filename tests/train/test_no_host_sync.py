"""A whole training step reads nothing back from the device (issue: the GPU step without a GPU).

Traced under FakeTensorMode (tests/step_trace.py): forward under the run's autocast, loss, backward, clipping, the
fused AdamW step with its on-device skip flag, the GradScaler's update and the step's counters — with the packed
path on (the batches have padding and several length groups), for MNRL and Matryoshka, with and without GradCache,
duplicate masks and false-negative masking. Any host read in the step (`.item()`, `bool(t)`, `.tolist()`,
boolean indexing, `nonzero()`) raises DataDependentOutputException; the last test shows that it does.
"""

import pytest
from torch._subclasses.fake_tensor import DataDependentOutputException, FakeTensor

from step_trace import TracedStep

CASES = {
    "mnrl": {},
    "matryoshka": {"matryoshka_dims": (32, 16, 8)},
    "gradcache": {"mini_batch_size": 4},
    "matryoshka+gradcache": {"matryoshka_dims": (32, 16), "mini_batch_size": 4},
    "masks": {"mask_duplicates": True, "mask_false_negatives": 0.1, "matryoshka_dims": (32, 8)},
    "negatives+masks": {"negatives": True, "mask_duplicates": True, "mask_false_negatives": 0.1},
    "bf16": {"precision": "bf16", "matryoshka_dims": (32, 16)},
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_training_step_reads_nothing_from_the_device(tiny_bert_folder, case):
    traced = TracedStep(tiny_bert_folder, **CASES[case])
    try:
        host = traced.host_batch()
        plans = [c["packing"] for column in host.mini_batches for c in column] if host.mini_batches else \
            [host.columns.joined["packing"]]
        assert any(len(plan.groups) > 1 for plan in plans)  # the packed path, with several length groups
        batch, lr = traced.run(host)
        assert lr == pytest.approx(5e-5)
        optimizer = traced.trainer.optimizer
        assert optimizer.defaults["fused"]
        state = [optimizer.state[p] for group in optimizer.param_groups for p in group["params"]]
        assert state and all(isinstance(s["exp_avg"], FakeTensor) for s in state)  # the update ran (on fakes)
        assert isinstance(traced.trainer.health.values, FakeTensor)
    finally:
        traced.close()


def test_mpnet_step_reads_nothing_from_the_device(mpnet_folder):
    traced = TracedStep(mpnet_folder, matryoshka_dims=(768, 256, 64), mask_duplicates=True)
    try:
        traced.run()
    finally:
        traced.close()


def test_a_host_read_in_the_step_is_caught(tiny_bert_folder, monkeypatch):
    """The trace bites: one `.item()` put back into the step (where the loss used to be read) fails it."""
    from embedder.train import trainer as trainer_module
    real = trainer_module.Trainer.forward_backward

    def reads_the_loss(self, batch):
        loss = real(self, batch)
        loss.item()
        return loss

    monkeypatch.setattr(trainer_module.Trainer, "forward_backward", reads_the_loss)
    traced = TracedStep(tiny_bert_folder)
    try:
        with pytest.raises(DataDependentOutputException):
            traced.run()
    finally:
        traced.close()


def test_a_mask_read_in_the_encoder_is_caught(tiny_bert_folder, monkeypatch):
    """And the packing planned in the forward again, from the mask on the device (the old `bool(keep.all())`,
    `.tolist()`, `nonzero()`), fails it too."""
    from embedder.model.embedder import Embedder
    monkeypatch.setattr(Embedder, "plan", lambda self, features: features)  # no plan made on the host
    traced = TracedStep(tiny_bert_folder)
    try:
        assert "packing" not in traced.host_batch().columns.joined
        with pytest.raises(DataDependentOutputException):
            traced.run()
    finally:
        traced.close()
