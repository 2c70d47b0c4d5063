"""sentence-transformers' own trainer, set up the one way every benchmark compares against.

MNRL (scale 20), wrapped in MatryoshkaLoss when dims are given; AdamW lr 5e-5 with linear decay, no warmup,
max_grad_norm 1.0 (ST's defaults, which are the seeds'); ST's default random batches; no saving, no reporting.
Needs sentence-transformers and `datasets`. Imported by the scripts beside it, never by embedder.
"""


def st_trainer(model, pairs: list[tuple[str, str]], output_dir: str, batch_size: int, dims=(), *,
               max_steps: int = -1, epochs: int = 1, precision: str = "fp32", seed: int = 42, callbacks=()):
    """A SentenceTransformerTrainer over (anchor, positive) pairs; call .train() on it."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.losses import MatryoshkaLoss, MultipleNegativesRankingLoss

    loss = MultipleNegativesRankingLoss(model)
    if dims:
        loss = MatryoshkaLoss(model, loss, list(dims))
    dataset = Dataset.from_dict({"anchor": [a for a, _ in pairs], "positive": [p for _, p in pairs]})
    args = SentenceTransformerTrainingArguments(
        output_dir=output_dir, per_device_train_batch_size=batch_size, max_steps=max_steps, num_train_epochs=epochs,
        learning_rate=5e-5, warmup_ratio=0.0, max_grad_norm=1.0, seed=seed, bf16=precision == "bf16",
        save_strategy="no", report_to="none", logging_steps=10, disable_tqdm=True,
        use_cpu=model.device.type != "cuda")
    return SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss,
                                      callbacks=list(callbacks))
