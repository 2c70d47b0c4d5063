"""The hand-written BERT and MPNet encoders against transformers' BertModel / MPNetModel (eager attention):
last hidden state at non-padding positions, float32, eval mode, <= 1e-5. Run: pytest tests/model/test_encoder.py"""

import math

import pytest
import torch
from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel, MPNetConfig, MPNetModel
from transformers.models.mpnet.modeling_mpnet import MPNetEncoder

from embedder.model import weights
from embedder.model.encoder import Encoder, EncoderConfig, relative_position_buckets
from embedder.model.weights import read_checkpoint

TINY = dict(vocab_size=120, hidden_size=48, num_hidden_layers=3, num_attention_heads=4, intermediate_size=96,
            max_position_embeddings=80)


def _padded_batch(vocab: int, lengths: list[int], pad_id: int, first_id: int = 5):
    L = max(lengths)
    ids = torch.full((len(lengths), L), pad_id)
    mask = torch.zeros(len(lengths), L, dtype=torch.long)
    for row, n in enumerate(lengths):
        ids[row, :n] = torch.randint(first_id, vocab, (n,))
        mask[row, :n] = 1
    return ids, mask


def _max_diff_on_tokens(ours, reference, mask):
    keep = mask.bool()
    return (ours[keep] - reference[keep]).abs().max().item()


@pytest.mark.parametrize("arch", ["bert", "mpnet"])
def test_random_encoder_matches_transformers(arch):
    if arch == "bert":
        reference = BertModel(BertConfig(**TINY, attn_implementation="eager"), add_pooling_layer=True)
    else:
        reference = MPNetModel(MPNetConfig(**TINY, attn_implementation="eager"))
    reference.eval()
    ours = Encoder(EncoderConfig.from_hf(reference.config.to_dict())).eval()
    passthrough = weights.load_state_dict(ours, reference.state_dict())
    assert any(k.startswith("pooler.") for k in passthrough)  # kept aside, not lost
    pad = reference.config.pad_token_id
    ids, mask = _padded_batch(TINY["vocab_size"], [7, 33, 1 + 1, 70], pad)
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=mask).last_hidden_state
        got = ours(ids, mask)
    assert _max_diff_on_tokens(got, expected, mask) <= 1e-5


def test_relative_buckets_match_mpnet():
    L = 300
    position = torch.arange(L)
    expected = MPNetEncoder.relative_position_bucket(position[None, :] - position[:, None], num_buckets=32)
    assert torch.equal(relative_position_buckets(L, 32), expected)


@pytest.mark.parametrize("which", ["minilm_folder", "mpnet_folder"])
def test_real_checkpoint_matches_transformers(which, request, varied_texts):
    folder = request.getfixturevalue(which)
    reference = AutoModel.from_pretrained(str(folder), attn_implementation="eager", dtype=torch.float32).eval()
    ours = Encoder(EncoderConfig.from_hf(reference.config.to_dict())).eval()
    weights.load_state_dict(ours, read_checkpoint(folder))
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    batch = tokenizer(varied_texts[:24], padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        expected = reference(**batch).last_hidden_state
        got = ours(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
    assert _max_diff_on_tokens(got, expected, batch["attention_mask"]) <= 1e-5


@pytest.mark.parametrize("which", ["minilm_folder", "mpnet_folder"])
def test_export_gives_back_every_checkpoint_tensor(which, request):
    folder = request.getfixturevalue(which)
    original = read_checkpoint(folder)
    ours = Encoder(EncoderConfig.from_hf(__import__("json").loads((folder / "config.json").read_text())))
    exported = weights.export_state_dict(ours, weights.load_state_dict(ours, original))
    assert set(exported) == set(original)
    for name, tensor in original.items():
        assert torch.equal(exported[name], tensor.to(exported[name].dtype)), name


def test_fp16_checkpoint_is_held_in_fp32():
    reference = BertModel(BertConfig(**TINY)).half()
    ours = Encoder(EncoderConfig.from_hf(reference.config.to_dict()))
    weights.load_state_dict(ours, reference.state_dict())
    assert all(p.dtype == torch.float32 for p in ours.parameters())


def test_mismatched_checkpoint_is_refused():
    reference = BertModel(BertConfig(**TINY))
    config = dict(reference.config.to_dict(), hidden_size=64)
    ours = Encoder(EncoderConfig.from_hf(config))
    with pytest.raises(ValueError, match="shape"):
        weights.load_state_dict(ours, reference.state_dict())
    state = {k: v for k, v in reference.state_dict().items() if "layer.2." not in k}
    with pytest.raises(ValueError, match="lacks"):
        weights.load_state_dict(Encoder(EncoderConfig.from_hf(reference.config.to_dict())), state)


@pytest.mark.parametrize("arch", ["bert", "mpnet"])
def test_packed_path_equals_padded_path(arch):
    """The unpadded (packed) forward and backward equal the padded ones at real tokens (fp32, eval mode); the
    lengths 3, 40, 17, 9 make three attention length groups (embedder/model/packing.py)."""
    config_class = BertConfig if arch == "bert" else MPNetConfig
    reference = (BertModel if arch == "bert" else MPNetModel)(config_class(**TINY))
    ours = Encoder(EncoderConfig.from_hf(reference.config.to_dict())).eval()
    weights.load_state_dict(ours, reference.state_dict())
    ids, mask = _padded_batch(TINY["vocab_size"], [3, 40, 17, 9], reference.config.pad_token_id)
    padded = ours(ids, mask, packed=False)
    packed = ours(ids, mask, packed=True)
    assert _max_diff_on_tokens(packed, padded, mask) <= 1e-5
    assert packed[~mask.bool()].abs().max() == 0  # padding rows come out as zeros
    grads = []
    # a random projection of the outputs (the squared norm of a LayerNorm's output is nearly constant, so its
    # gradient before the last LayerNorm would be float rounding only)
    projection = torch.randn(padded.shape, generator=torch.Generator().manual_seed(0)) * mask[..., None]
    for flag in (False, True):
        ours.zero_grad()
        (ours(ids, mask, packed=flag) * projection).sum().backward()
        grads.append({n: p.grad.clone() for n, p in ours.named_parameters()})
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], atol=1e-5), name


def test_attention_recomputed_in_backward_gives_the_same_gradients():
    """In training, attention probabilities (and their dropout mask) are recomputed in backward rather than kept:
    the output and every gradient equal the formula softmax((q/√d) kᵀ + mask) with the dropped entries zeroed, · v / rate, computed directly with
    the same dropout mask (drawn again from the same RNG state), bit for bit, and the RNG moves on as without
    recomputation."""
    from embedder.model.dropout import drop_mask
    from embedder.model.encoder import SelfAttention
    config = EncoderConfig.from_hf(BertConfig(hidden_size=32, num_attention_heads=4, attention_probs_dropout_prob=0.3)
                                   .to_dict())
    attention = SelfAttention(config).train()
    x = torch.randn(3, 10, 32, requires_grad=True)
    mask = torch.ones(3, 1, 1, 10, dtype=torch.bool)
    mask[0, ..., 7:] = False
    torch.manual_seed(5)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(tuple(t.shape)) or t, lambda t: t):
        ours = attention(x, mask)
    assert saved and (3, 4, 10, 10) not in saved  # no (B, H, L, L) probabilities or dropout mask kept
    ours.square().sum().backward()
    grads = [x.grad.clone()] + [p.grad.clone() for p in attention.parameters()]
    after = torch.rand(1)

    x.grad = None
    attention.zero_grad()
    torch.manual_seed(5)
    B, L, D = x.shape
    q, k, v = attention.qkv(x).view(B, L, 3, 4, D // 4).permute(2, 0, 3, 1, 4)
    scores = ((q * (1 / math.sqrt(D // 4))) @ k.transpose(-2, -1)).masked_fill(~mask, float("-inf"))
    drop, rate = drop_mask((3, 4, 10, 10), 0.3)
    context = (torch.softmax(scores, dim=-1).masked_fill(drop, 0) @ v) * (1 / rate)
    reference = attention.out(context.transpose(1, 2).reshape(B, L, D))
    reference.square().sum().backward()
    assert torch.equal(ours, reference) and torch.equal(after, torch.rand(1))
    for ours_grad, reference_grad in zip(grads, [x.grad] + [p.grad for p in attention.parameters()]):
        assert torch.equal(ours_grad, reference_grad)


def test_fast_dropout_mask_keeps_the_asked_share_uniformly():
    """The mask's keep rate is 1 − p to 2⁻¹⁷, every 16-bit lane of the drawn words alike, and attention without
    dropout equals SDPA (boolean and additive masks)."""
    from embedder.model.attention import attention_with_dropout
    from embedder.model.dropout import drop_mask
    torch.manual_seed(0)
    drop, rate = drop_mask((4_000_000,), 0.1)
    assert abs(rate - 0.9) <= 2**-17
    assert all(abs((~drop[lane::4]).float().mean().item() - rate) < 0.002 for lane in range(4))
    q, k, v = (torch.randn(2, 4, 9, 8) for _ in range(3))
    key_mask = torch.ones(2, 1, 1, 9, dtype=torch.bool)
    key_mask[0, ..., 6:] = False
    bias = torch.randn(2, 4, 9, 9).masked_fill(~key_mask, float("-inf"))
    for mask in (key_mask, bias):
        expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        assert (attention_with_dropout(q, k, v, mask, 0.0) - expected).abs().max() <= 1e-6


def test_gather_rows_backward_equals_index_select():
    """The packed path's row gather: forward and gradient equal torch's index_select (distinct indices)."""
    from embedder.model.attention import GatherRows
    x = torch.randn(12, 5, requires_grad=True)
    index = torch.tensor([7, 0, 3, 11, 4])
    weights = torch.randn(5, 5)
    ours = GatherRows.apply(x, index)
    (ours * weights).sum().backward()
    ours_grad, x.grad = x.grad.clone(), None
    theirs = x.index_select(0, index)
    (theirs * weights).sum().backward()
    assert torch.equal(ours, theirs) and torch.equal(ours_grad, x.grad)


def test_recomputed_attention_gradients_include_the_additive_mask():
    """MPNet's relative-position bias is learned: through the recomputed attention its gradient (and q, k, v's)
    equals the direct computation's with the same dropout draw, bit for bit, in fp32 and under bf16 autocast."""
    from embedder.model.attention import attention_with_dropout, recomputed
    for dtype in (None, torch.bfloat16):
        results = []
        for attend in (lambda *a: recomputed(attention_with_dropout, *a), attention_with_dropout):
            torch.manual_seed(1)
            q, k, v = (torch.randn(2, 3, 6, 4, requires_grad=True) for _ in range(3))
            bias = torch.randn(2, 3, 6, 6, requires_grad=True)
            with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                out = attend(q, k, v, bias, 0.2)
            out.float().square().sum().backward()
            results.append([out, q.grad, k.grad, v.grad, bias.grad])
        assert all(torch.equal(a, b) for a, b in zip(*results))


def test_attention_with_a_learned_bias_equals_the_formula_and_its_gradients():
    """MPNet's path: a full (B, H, L, L) additive mask that needs a gradient (the relative bias). At fp32 it goes
    into the scores' GEMM (baddbmm); under bf16 autocast (bf16 q, k, v, as the Linear layers give them; the fp32
    mask) the scores are promoted to fp32 by the mask. Both: output and the gradients of q, k, v and the bias equal
    the plain formula's softmax(q kᵀ / √d + mask), dropped entries zeroed, times v / keep rate, element for
    element."""
    from embedder.model.attention import attention_with_dropout
    from embedder.model.dropout import drop_mask
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 9, 8, requires_grad=True) for _ in range(3))
    bias = torch.randn(4, 9, 9, requires_grad=True)
    keep = torch.ones(2, 1, 1, 9, dtype=torch.bool)
    keep[1, ..., 5:] = False

    def plain(q, k, v, mask, p):
        scores = (q * (1 / math.sqrt(q.shape[-1]))) @ k.transpose(-2, -1) + mask
        drop, rate = drop_mask((2, 4, 9, 9), p)
        return (torch.softmax(scores, dim=-1).masked_fill(drop, 0) @ v) * (1 / rate)

    for dtype in (torch.float32, torch.bfloat16):
        results = []
        for attend in (attention_with_dropout, plain):
            torch.manual_seed(3)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
                out = attend(q.to(dtype), k.to(dtype), v.to(dtype), bias[None].masked_fill(~keep, float("-inf")), 0.2)
            results.append((out, *torch.autograd.grad(out.float().square().sum(), (q, k, v, bias))))
        for ours, reference in zip(*results):
            assert torch.equal(ours, reference), dtype
