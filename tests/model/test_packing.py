"""Length groups for packed attention, against hand-computed costs Σ n_g · L_g²."""

import torch

from embedder.model.packing import length_groups, plan


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
    made = plan(keep, max_groups=2)
    positions, groups = made.positions, made.groups
    # lengths 3, 5, 1: sorted 1, 3, 5; {1,3}{5}: 2·9 + 25 = 43; {1}{3,5}: 1 + 50 = 51; one group 75
    assert [(g.count, g.length) for g in groups] == [(2, 3), (1, 5)]
    assert positions.tolist() == [10, 0, 1, 2, 5, 6, 7, 8, 9]  # row 2's token, row 0's three, row 1's five
    assert groups[0].index.tolist() == [0, 3, 4, 5] and groups[1].index.tolist() == [0, 1, 2, 3, 4]
    assert groups[0].keep.tolist() == [[True, False, False], [True, True, True]]


def _columns(model, texts_per_column, prompt_lengths):
    columns = []
    for texts, prompt_length in zip(texts_per_column, prompt_lengths):
        features = dict(model.tokenizer(texts))
        if prompt_length:
            features["prompt_length"] = prompt_length
        columns.append(features)
    return columns


def test_one_forward_for_all_columns_equals_one_per_column(tiny_bert_folder, mpnet_folder):
    """The CPU training step embeds anchors, positives and negatives in one packed forward: the embeddings and
    the gradients equal one forward per column (fp32, no dropout), prompts excluded from pooling included."""
    import embedder
    from embedder.model.column_encoder import ColumnEncoder
    texts = [["q: short", "q: a somewhat longer question about things?"],
             ["a passage " * 30, "another passage, shorter"], ["a hard negative " * 12, "x"]]
    for folder in (tiny_bert_folder, mpnet_folder):
        model = embedder.load(str(folder), device="cpu").eval()
        model.pooling.include_prompt = False
        columns = _columns(model, texts, [3, None, None])
        results = []
        encoder = ColumnEncoder(model)
        for forward in (lambda cs: encoder(encoder.inputs(cs)), lambda cs: [model(c) for c in cs]):
            model.zero_grad()
            embeddings = forward(columns)
            sum((e * torch.arange(e.numel()).view_as(e).sin()).sum() for e in embeddings).backward()
            results.append((embeddings, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
        (ours, ours_grads), (reference, reference_grads) = results
        assert all((a - b).abs().max() <= 1e-5 for a, b in zip(ours, reference))
        assert ours_grads.keys() == reference_grads.keys()
        for name in reference_grads:
            assert torch.allclose(ours_grads[name], reference_grads[name], atol=1e-5, rtol=1e-4), name


def test_a_batch_without_padding_runs_the_plain_computation():
    assert plan(torch.ones(3, 4, dtype=torch.long)).dense  # every token real: no groups, no gather
    assert not plan(torch.tensor([[1, 1], [1, 0]])).dense
