"""Every CUDA branch of the training step, traced on a fake `cuda:0` (torch's CUDA build, no GPU).

Runs only under tests/fake_cuda/run.sh: a venv with the CUDA build of torch and this folder's fake_cuda.c preloaded
(a CUDA runtime that answers "one device"). The tensors are FakeTensorMode's (shapes, dtypes, devices, no values),
so this proves placement, dtypes, wiring and the absence of host reads — not numbers, kernels, memory or speed,
which only a real GPU can show. Each test asserts what would go wrong silently: a fall-back to fp32 or to the CPU,
a disabled GradScaler, an unfused optimiser, the CPU RNG branch of the recomputed attention; and a real tensor on the
fake device raises, so nothing passes by computing for real.
"""

import os
from collections import Counter

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

if not (torch.version.cuda and os.environ.get("EMBEDDER_FAKE_CUDA") == "1"):
    pytest.skip("needs the CUDA build of torch and the fake device: run tests/fake_cuda/run.sh",
                allow_module_level=True)

from step_trace import TracedStep  # noqa: E402

from embedder.model import attention  # noqa: E402
from embedder.model.locate import model_folder  # noqa: E402

CUDA = torch.device("cuda", 0)


class OpLog(TorchDispatchMode):
    """Every aten op of the trace: its name, output dtypes and devices."""

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        outputs = out if isinstance(out, (tuple, list)) else [out]
        self.ops.append((func.overloadpacket.__name__, [(t.dtype, t.device) for t in outputs if torch.is_tensor(t)]))
        return out

    def dtypes(self, *names):
        return Counter(dtype for name, outs in self.ops if name in names for dtype, _ in outs)

    def on_cpu(self, names):
        return [name for name, outs in self.ops if name in names and any(d.type == "cpu" for _, d in outs)]


MODEL_OPS = {"mm", "addmm", "bmm", "native_layer_norm", "embedding", "gelu", "_softmax", "index_select",
             "index_copy", "_log_softmax", "nll_loss_forward", "_fused_adamw_", "_amp_foreach_non_finite_check_and_unscale_"}


PINNED = Counter()


@pytest.fixture(autouse=True)
def pin_memory(monkeypatch):
    """FakeTensorMode has no pin_memory: count the requests, keep the tensor."""
    def pinned(tensor, *args):
        PINNED["tensors"] += 1
        return tensor

    PINNED.clear()
    monkeypatch.setattr(torch.Tensor, "pin_memory", pinned)


def _trace(folder, monkeypatch, **settings):
    calls = Counter()
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def spied_sdpa(q, k, v, *args, **kwargs):
        calls[("sdpa", q.dtype, k.dtype, v.dtype, q.device)] += 1
        return sdpa(q, k, v, *args, **kwargs)

    real_get_rng = torch.cuda.get_rng_state

    def spied_get_rng(device="cuda"):
        calls[("cuda rng", torch.device(device).type)] += 1
        return real_get_rng(device)

    monkeypatch.setattr(attention.torch.cuda, "get_rng_state", spied_get_rng)
    monkeypatch.setattr("embedder.model.encoder.F.scaled_dot_product_attention", spied_sdpa)
    traced = TracedStep(folder, device="cuda", **settings)
    host = traced.host_batch()
    log = OpLog()
    batch, _ = traced.run(host, inner=log)
    return traced, batch, log, calls


@pytest.fixture(scope="module")
def minilm():
    return model_folder("all-MiniLM-L6-v2")


@pytest.fixture(scope="module")
def mpnet():
    return model_folder("all-mpnet-base-v2")


@pytest.mark.parametrize("precision,low", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_mixed_precision_step_on_cuda(minilm, monkeypatch, precision, low):
    traced, batch, log, calls = _trace(minilm, monkeypatch, precision=precision, matryoshka_dims=(384, 128, 32),
                                       mask_duplicates=True, mask_false_negatives=0.1)
    trainer = traced.trainer
    assert trainer.config.precision == precision
    assert batch.columns.joined is None  # a GPU runs one forward per column...
    plans = [c["packing"] for c in batch.columns.columns]
    assert all(plan.positions.device == CUDA and len(plan.groups) == 1 for plan in plans)  # ...packed, one group
    assert PINNED["tensors"] >= 2 * 3  # ids, masks and plans copied from pinned memory
    assert {key[1:] for key in calls if key[0] == "sdpa"} == {(low, low, low, CUDA)}  # attention inputs in bf16/fp16
    assert calls[("cuda rng", "cuda")] >= 6  # _Recomputed's CUDA branch: once per layer and column
    assert set(log.dtypes("addmm")) == {low}  # every Linear in bf16/fp16
    assert set(log.dtypes("native_layer_norm")) == {torch.float32}  # autocast keeps LayerNorm in fp32
    assert set(log.dtypes("_log_softmax", "nll_loss_forward")) == {torch.float32}  # the loss in fp32
    assert log.on_cpu(MODEL_OPS) == []  # the model's work all on cuda:0
    optimizer = trainer.optimizer
    assert optimizer.defaults["fused"]
    states = [optimizer.state[p] for group in optimizer.param_groups for p in group["params"]]
    assert all(s["exp_avg"].device == CUDA and s["exp_avg"].dtype == torch.float32 for s in states)
    assert all(p.device == CUDA and p.dtype == torch.float32 for p in traced.model.parameters())  # fp32 masters
    assert trainer.scaler.is_enabled() == (precision == "fp16")
    if precision == "fp16":
        assert trainer.scaler._scale.device == CUDA and trainer.scaler._growth_tracker.device == CUDA
    assert trainer.health.values.device == CUDA


def test_fp32_step_and_gradcache_on_cuda(mpnet, monkeypatch):
    traced, batch, log, calls = _trace(mpnet, monkeypatch, precision="fp32", mini_batch_size=4,
                                       matryoshka_dims=(768, 256, 64))
    assert batch.mini_batches and all(c["input_ids"].device == CUDA and c["packing"].positions.device == CUDA
                                      for column in batch.mini_batches for c in column)
    assert {key[1:] for key in calls if key[0] == "sdpa"} == {(torch.float32,) * 3 + (CUDA,)}
    assert calls[("cuda rng", "cuda")] > 0
    assert set(log.dtypes("mm", "addmm", "bmm")) == {torch.float32}
    assert log.on_cpu(MODEL_OPS) == []
    assert not traced.trainer.scaler.is_enabled() and traced.trainer.optimizer.defaults["fused"]


def test_the_fake_device_computes_nothing():
    """A real tensor on the fake device raises (no driver behind it): nothing in these traces ran for real."""
    assert torch.cuda.is_available() and torch.cuda.get_device_name(0) == "fake cuda device (no GPU)"
    with pytest.raises(RuntimeError, match="driver"):
        torch.ones(2, device="cuda") + 1


def test_an_evaluation_batch_on_cuda(minilm, monkeypatch):
    """encode: tokenising and planning are host work (run for real, outside the trace, as on a GPU machine);
    what they give goes in as fake CPU tensors, and everything after runs on cuda:0."""
    from torch._subclasses.fake_tensor import unset_fake_temporarily

    from embedder.model.embedder import Embedder
    from embedder.model.transfer import map_tensors
    traced = TracedStep(minilm, device="cuda")
    tokenize, plan = Embedder.tokenize, Embedder.plan

    def on_the_host(self, *args):
        with unset_fake_temporarily():
            return tokenize(self, *args)

    def planned_on_the_host(self, features):
        with unset_fake_temporarily():
            planned = plan(self, features)
        return map_tensors(planned, traced.mode.from_tensor)

    monkeypatch.setattr(Embedder, "tokenize", on_the_host)
    monkeypatch.setattr(Embedder, "plan", planned_on_the_host)
    model = traced.model
    with traced.mode:
        embeddings = model.encode(["what is a budget?", "a much longer passage about public budgets " * 5],
                                  convert_to_tensor=True, compute_precision="bf16")
    assert embeddings.shape == (2, 384) and embeddings.dtype == torch.float32 and embeddings.device == CUDA
    assert PINNED["tensors"] >= 2
