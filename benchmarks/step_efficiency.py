"""How close a CPU training step is to the machine's matrix-product limit.

    python benchmarks/step_efficiency.py                                  # mpnet + MiniLM, default data + aipolicy
    python benchmarks/step_efficiency.py --base all-mpnet-base-v2 --data stdlib:train --precision fp32

(a) GEMM rate: this machine's FLOP/s for the encoder's matrix products, y = x Wᵀ with x (T, D) and W of shapes
    (3D, D) (q, k, v), (D, D) (attention output), (I, D) and (D, I) (feed-forward), T = the mean real tokens of a
    step's batch; weighted by each product's share of a layer's FLOPs; fp32, and bf16 where the CPU computes it
    natively (avx512_bf16 / AMX). The median of repeated timings after a warm-up.
(b) A step's FLOPs, from its real batch (the packing plan train.py runs: real tokens only, attention per length
    group): per layer forward 2 · T · (4D² + 2DI) for the projections and feed-forward block, plus 4 · Σ_g n_g · L_g² · D
    for attention's two products (scores and context) over every length group; backward = 2 × forward, so a step
    is 3 × layers × that. Embeddings, LayerNorms, softmax, the loss and the optimiser are left out (they are not
    matrix products; their time is what the figure shows as lost), and so is attention recomputed in backward.
(c) Achieved FLOP/s of train.py's steps (Trainer.step, steps 3… of the run: forward, backward, optimiser) ÷ (a).

Prints one table; never run as a test. Say which CPU (`lscpu` flags) a figure comes from.
"""

import statistics
import sys
import tempfile
import time
from pathlib import Path

import click

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
AIPOLICY = REPO.parent / "shared" / "data" / "aipolicy" / "train.json"


def gemm_rate(tokens: int, hidden: int, intermediate: int, dtype, repeats: int = 7) -> float:
    """FLOP/s of the encoder's four products at `tokens` rows, weighted by their FLOPs (see the docstring)."""
    import torch
    import torch.nn.functional as F
    x = torch.randn(tokens, hidden, dtype=dtype)
    h = torch.randn(tokens, intermediate, dtype=dtype)
    products = [(x, torch.randn(3 * hidden, hidden, dtype=dtype)), (x, torch.randn(hidden, hidden, dtype=dtype)),
                (x, torch.randn(intermediate, hidden, dtype=dtype)), (h, torch.randn(hidden, intermediate, dtype=dtype))]
    flops = seconds = 0.0
    for inputs, weight in products:
        for _ in range(2):
            F.linear(inputs, weight)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            F.linear(inputs, weight)
            times.append(time.perf_counter() - started)
        flops += 2 * inputs.shape[0] * inputs.shape[1] * weight.shape[0]
        seconds += statistics.median(times)
    return flops / seconds


def step_flops(plan, rows_tokens: int, config) -> float:
    """Matrix-product FLOPs of one training step over a batch with this packing plan (None: padded, rows_tokens)."""
    D, I, layers = config.hidden_size, config.intermediate_size, config.num_layers
    if plan is None or plan.dense:
        tokens, attention = rows_tokens, None
    else:
        tokens = len(plan.positions)
        attention = sum(group.count * group.length ** 2 for group in plan.groups)
    per_layer = 2 * tokens * (4 * D * D + 2 * D * I) + 4 * attention * D
    return 3 * layers * per_layer


def measure(base: str, data: str, precision: str, batch_size: int, steps: int) -> dict:
    import torch

    import embedder
    import embedder.train.run
    from embedder.train import trainer as trainer_module
    records = []  # (flops, seconds, tokens) per step
    real_step = trainer_module.Trainer.step

    def timed_step(self, batch):
        config = self.model.backbone.config
        if batch.columns is not None and batch.columns.joined is not None:
            flops = step_flops(batch.columns.joined["packing"], batch.columns.joined["input_ids"].numel(), config)
            tokens = int(batch.columns.joined["attention_mask"].sum())
        else:
            parts = [c for c in batch.columns.columns] if batch.columns is not None else \
                [c for column in batch.mini_batches for c in column]
            flops = sum(step_flops(c.get("packing"), c["input_ids"].numel(), config) for c in parts)
            tokens = sum(int(c["attention_mask"].sum()) for c in parts)
        started = time.perf_counter()
        result = real_step(self, batch)
        records.append((flops, time.perf_counter() - started, tokens))
        return result

    trainer_module.Trainer.step = timed_step
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = embedder.TrainConfig(base=base, train=(data,), eval=(), output=f"{tmp}/m", max_steps=steps,
                                          batch_size=batch_size, precision=precision, merge="off")
            result = embedder.train.run.train(config, echo=lambda *a, **k: None)
    finally:
        trainer_module.Trainer.step = real_step
    timed = records[2:]  # the first steps warm up
    flops, seconds = sum(f for f, _, _ in timed), sum(s for _, s, _ in timed)
    encoder = result.model.backbone.config
    tokens = round(statistics.mean(t for _, _, t in timed))
    dtype = torch.bfloat16 if result.config.precision == "bf16" else torch.float32
    limit = gemm_rate(tokens, encoder.hidden_size, encoder.intermediate_size, dtype)
    return {"precision": result.config.precision, "steps": len(timed), "tokens": tokens,
            "step_s": seconds / len(timed), "achieved": flops / seconds, "gemm": limit}


@click.command()
@click.option("--base", "bases", multiple=True, default=["all-mpnet-base-v2", "all-MiniLM-L6-v2"])
@click.option("--data", "datas", multiple=True, default=["stdlib:train", str(AIPOLICY)])
@click.option("--precision", "precisions", multiple=True, default=None,
              help="default: fp32, and bf16 where this CPU computes it natively")
@click.option("--batch-size", default=20, type=int)
@click.option("--steps", default=8, type=int)
def main(bases, datas, precisions, batch_size, steps):
    from embedder.model.precision import cpu_bf16_feature
    from embedder.train.console import device_name
    feature = cpu_bf16_feature()
    precisions = precisions or (["fp32", "bf16"] if feature else ["fp32"])
    print(f"{device_name('cpu')}, native bf16: "
          f"{feature or 'no'}; batch {batch_size}, steps 3-{steps}\n")
    print("| model | data | precision | real tokens / step | s / step | achieved GFLOP/s | GEMM GFLOP/s | efficiency |")
    print("|---|---|---|---|---|---|---|---|")
    for base in bases:
        for data in datas:
            for precision in precisions:
                r = measure(base, data, precision, batch_size, steps)
                name = Path(data).parent.name if data.endswith(".json") else data
                print(f"| {base} | {name} | {r['precision']} | {r['tokens']} | {r['step_s']:.2f} | "
                      f"{r['achieved'] / 1e9:.1f} | {r['gemm'] / 1e9:.1f} | {r['achieved'] / r['gemm']:.0%} |",
                      flush=True)


if __name__ == "__main__":
    main()
