"""The reference: sentence-transformers' own trainer on aipolicy (train -> test), for comparison with
benchmarks/quality_aipolicy.py on the same machine.

    python benchmarks/st_reference_quality.py --base all-mpnet-base-v2 --batch-size 20 --dims 768,512,256,128,64

ST 6.x trainer, MNRL (scale 20) or MatryoshkaLoss over MNRL, 1 epoch, lr 5e-5, seed 42, default (random) batches.
The trained model is scored with ST's InformationRetrievalEvaluator (cosine) at full size and at the smallest dim.
Needs sentence-transformers and `datasets`. Never run as a test.
"""

import json
import sys
import tempfile
import time
from pathlib import Path

import click

REPO = Path(__file__).resolve().parents[1]


@click.command()
@click.option("--base", default="all-MiniLM-L6-v2")
@click.option("--data", default=str(REPO.parent / "shared" / "data" / "aipolicy"))
@click.option("--batch-size", default=16, type=int)
@click.option("--epochs", default=1, type=int)
@click.option("--dims", default="none")
@click.option("--seed", default=42, type=int)
def main(base, data, batch_size, epochs, dims, seed):
    sys.path.insert(0, str(REPO))
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.evaluation import InformationRetrievalEvaluator
    from sentence_transformers.losses import MatryoshkaLoss, MultipleNegativesRankingLoss

    from embedder import bases
    train = json.loads((Path(data) / "train.json").read_text())
    test = json.loads((Path(data) / "test.json").read_text())
    pairs = [(train["questions"][q], train["corpus"][p]) for q in train["questions"]
             for p in train["relevant_contexts"].get(q, [])]
    dataset = Dataset.from_dict({"anchor": [a for a, _ in pairs], "positive": [p for _, p in pairs]})
    model = SentenceTransformer(str(bases.resolve(base)), device="cpu")
    loss = MultipleNegativesRankingLoss(model)
    dim_list = [int(d) for d in dims.split(",")] if dims != "none" else []
    if dim_list:
        loss = MatryoshkaLoss(model, loss, dim_list)
    with tempfile.TemporaryDirectory() as tmp:
        args = SentenceTransformerTrainingArguments(output_dir=tmp, per_device_train_batch_size=batch_size,
                                                    num_train_epochs=epochs, learning_rate=5e-5, seed=seed,
                                                    save_strategy="no", report_to="none", use_cpu=True,
                                                    disable_tqdm=True)
        started = time.time()
        SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss).train()
        seconds = time.time() - started
    relevant = {q: set(v) for q, v in test["relevant_contexts"].items()}
    row = {"system": "sentence-transformers", "base": base, "batch": batch_size, "dims": dims, "seed": seed,
           "train_seconds": round(seconds, 1)}
    for d in [None] + dim_list[-1:]:
        metrics = InformationRetrievalEvaluator(test["questions"], test["corpus"], relevant, truncate_dim=d)(model)
        row[f"map@100{'' if d is None else f' dim {d}'}"] = metrics["cosine_map@100"]
    print(json.dumps(row))


if __name__ == "__main__":
    main()
