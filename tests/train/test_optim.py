"""Optimiser and schedule: the learning-rate multiplier against transformers' get_linear_schedule_with_warmup,
the weight-decay groups against transformers' Trainer rule applied to the Hugging Face names, and one optimiser
step against AdamW computed by hand."""

import copy
import math

import pytest
import torch
from transformers import BertConfig, BertModel, MPNetConfig, MPNetModel, get_linear_schedule_with_warmup
from transformers.trainer_pt_utils import get_parameter_names

from embedder.model import weights
from embedder.model.encoder import Encoder, EncoderConfig
from embedder.train import optim


@pytest.mark.parametrize("total,warmup", [(38, 0), (150, 15), (7, 3), (1, 0)])
def test_schedule_matches_transformers(total, warmup):
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    scheduler = get_linear_schedule_with_warmup(opt, warmup, total)
    for step in range(total + 2):
        assert optim.lr_multiplier(step, total, warmup) == pytest.approx(opt.param_groups[0]["lr"], abs=1e-12)
        opt.step()
        scheduler.step()
    assert optim.warmup_steps(150, 0.1) == 15 and optim.warmup_steps(38, 0.05) == 2


@pytest.mark.parametrize("reference", [
    BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=32), add_pooling_layer=False),
    MPNetModel(MPNetConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=32), add_pooling_layer=False)])
def test_decay_groups_match_transformers_rule(reference):
    forbidden = [r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)"]
    hf_decay = set(get_parameter_names(reference, [torch.nn.LayerNorm], forbidden))
    ours = Encoder(EncoderConfig.from_hf(reference.config.to_dict()))
    table = weights._expand(ours.config.architecture, ours.config.num_layers)
    our_decay = {name for name, _ in ours.named_parameters() if optim.decays(ours, name)}
    hf_names_of = {}
    for hf_name, (our_name, _) in table.items():
        hf_names_of.setdefault(our_name, set()).add(hf_name)
    mapped = set().union(*(hf_names_of[n] for n in our_decay))
    assert mapped == {n for n in hf_decay if n in table}
    groups = optim.parameter_groups(ours, 0.01)
    assert sum(len(g["params"]) for g in groups) == len(list(ours.parameters()))


def test_one_adamw_step_by_hand():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    w0, b0 = model.weight.detach().clone(), model.bias.detach().clone()
    opt = optim.make_optimizer(model, lr=0.1, weight_decay=0.5)
    loss = model(torch.tensor([[1.0, -2.0, 0.5]])).pow(2).sum()
    loss.backward()
    gw, gb = model.weight.grad.clone(), model.bias.grad.clone()
    opt.step()
    # step 1: m = (1-β1) g, v = (1-β2) g², bias-corrected m̂ = g, v̂ = g²;
    # θ ← θ − lr·wd·θ (decoupled, weights only) − lr · m̂ / (√v̂ + eps)
    eps = 1e-8
    expected_w = w0 - 0.1 * 0.5 * w0 - 0.1 * gw / (gw.abs() + eps)
    expected_b = b0 - 0.1 * gb / (gb.abs() + eps)
    assert torch.allclose(model.weight, expected_w, atol=1e-6)
    assert torch.allclose(model.bias, expected_b, atol=1e-6)
    assert math.isclose(opt.param_groups[0]["betas"][0], 0.9) and opt.param_groups[0]["eps"] == 1e-8


def test_fused_adamw_equals_the_default_kernels():
    """make_optimizer uses torch's fused AdamW on the CPU too; it must give the for-each implementation's weights."""
    torch.manual_seed(0)
    models = [torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.LayerNorm(16), torch.nn.Linear(16, 4))]
    models.append(copy.deepcopy(models[0]))
    fused = optim.make_optimizer(models[0], lr=1e-2, weight_decay=0.1)
    plain = torch.optim.AdamW(optim.parameter_groups(models[1], 0.1), lr=1e-2, foreach=True)
    assert fused.defaults["fused"] and not plain.defaults["fused"]
    for _ in range(5):
        x = torch.randn(32, 8)
        for model, opt in zip(models, (fused, plain)):
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        assert torch.allclose(a, b, atol=1e-6, rtol=0)


def test_the_unwrapped_adamw_is_torchs_update_and_state():
    """make_optimizer's AdamW (torch's, its methods without the torch._dynamo wrappers) gives torch.optim.AdamW's
    weights bit for bit (fused, weight decay groups, zero_grad between steps), and its state_dict loads into
    torch's AdamW and back (checkpoints stay torch's format)."""
    torch.manual_seed(0)
    models = [torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.LayerNorm(16), torch.nn.Linear(16, 4))]
    models.append(copy.deepcopy(models[0]))
    ours = optim.make_optimizer(models[0], lr=1e-2, weight_decay=0.1)
    theirs = torch.optim.AdamW(optim.parameter_groups(models[1], 0.1), lr=1e-2, fused=True)
    for _ in range(4):
        x = torch.randn(32, 8)
        for model, opt in zip(models, (ours, theirs)):
            opt.zero_grad(set_to_none=True)
            model(x).pow(2).mean().backward()
            opt.step()
    assert all(torch.equal(a, b) for a, b in zip(models[0].parameters(), models[1].parameters()))
    reloaded = torch.optim.AdamW(optim.parameter_groups(models[1], 0.1), lr=1e-2, fused=True)
    reloaded.load_state_dict(ours.state_dict())
    ours.load_state_dict(theirs.state_dict())
    for a, b in zip(ours.state_dict()["state"].values(), reloaded.state_dict()["state"].values()):
        assert all(torch.equal(a[key], b[key]) for key in ("step", "exp_avg", "exp_avg_sq"))


@pytest.mark.parametrize("budget", ["attention.KEPT_PROBABILITIES_BYTES", "0"])
def test_a_fine_tune_does_not_import_torch_dynamo(tiny_bert_folder, tmp_path, budget):
    """Training (optimiser created, steps, zero_grad, the checkpoint's state_dict; attention probabilities kept or,
    with no budget, recomputed in backward) never imports torch._dynamo, whose import is 0.9 s of a short run's
    start-up on 2 cores; checked in a fresh process."""
    import subprocess
    import sys
    code = ("import sys, embedder, embedder.model.attention as attention\n"
            f"attention.KEPT_PROBABILITIES_BYTES = {budget}\n"
            "recomputations, forward = [], attention._Recomputed.forward\n"
            "attention._Recomputed.forward = staticmethod(lambda *a: recomputations.append(1) or forward(*a))\n"
            f"embedder.fit(base={str(tiny_bert_folder)!r}, output={str(tmp_path / 'out')!r}, epochs=1, batch_size=4,"
            " train=[('a question', 'its passage'), ('another one', 'a different passage'), ('third', 'text three'),"
            " ('fourth', 'text four')] * 2, eval=None, echo=lambda *a, **k: None)\n"
            "print(bool(recomputations), 'torch._dynamo' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == f"{budget == '0'} False"


@pytest.mark.parametrize("fused", [True, False])
def test_a_skipped_step_leaves_weights_moments_and_count(fused):
    """step_unless(skip=True) changes nothing; skip=False is exactly optimizer.step() (the same kernel)."""
    torch.manual_seed(0)
    start = torch.randn(5, 3)
    grads = [torch.randn(5, 3), torch.randn(5, 3)]
    ours, reference = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    opt = optim.AdamW([ours], lr=0.1, fused=fused or None)
    ref = optim.AdamW([reference], lr=0.1, fused=fused or None)
    ours.grad, reference.grad = grads[0].clone(), grads[0].clone()
    optim.step_unless(opt, torch.tensor(False))
    ref.step()
    assert torch.equal(ours, reference)
    kept = {k: v.clone() for k, v in opt.state[ours].items()}
    ours.grad = torch.full((5, 3), float("nan"))
    optim.step_unless(opt, torch.tensor(True))  # a NaN step: nothing moves, the step count included
    assert torch.equal(ours, reference) and all(torch.equal(opt.state[ours][k], v) for k, v in kept.items())
    assert float(opt.state[ours]["step"]) == 1.0
    ours.grad, reference.grad = grads[1].clone(), grads[1].clone()
    optim.step_unless(opt, torch.tensor(False))
    ref.step()  # the second real step equals the reference's second: the skipped one left no trace
    assert torch.equal(ours, reference)
