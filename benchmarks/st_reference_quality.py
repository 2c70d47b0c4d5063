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
sys.path.insert(0, str(REPO))


@click.command()
@click.option("--base", default="all-MiniLM-L6-v2")
@click.option("--data", default=str(REPO.parent / "shared" / "data" / "aipolicy"))
@click.option("--batch-size", default=16, type=int)
@click.option("--epochs", default=1, type=int)
@click.option("--dims", default="none")
@click.option("--seed", default=42, type=int)
def main(base, data, batch_size, epochs, dims, seed):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.evaluation import InformationRetrievalEvaluator
    from st_trainer import st_trainer

    from embedder.data.formats import load_ir
    from embedder.data.specs import load_train
    from embedder.model import locate as bases

    pairs = [(row[0], row[1]) for row in load_train(str(Path(data) / "train.json")).rows]
    test = load_ir(Path(data) / "test.json")
    model = SentenceTransformer(str(bases.model_folder(base)), device="cpu")
    dim_list = [int(d) for d in dims.split(",")] if dims != "none" else []
    with tempfile.TemporaryDirectory() as tmp:
        trainer = st_trainer(model, pairs, tmp, batch_size, dim_list, epochs=epochs, seed=seed)
        started = time.time()
        trainer.train()
        seconds = time.time() - started
    relevant = {q: set(v) for q, v in test.relevant.items()}
    row = {"system": "sentence-transformers", "base": base, "batch": batch_size, "dims": dims, "seed": seed,
           "train_seconds": round(seconds, 1)}
    for d in [None] + dim_list[-1:]:
        metrics = InformationRetrievalEvaluator(test.queries, test.corpus, relevant, truncate_dim=d)(model)
        row[f"map@100{'' if d is None else f' dim {d}'}"] = metrics["cosine_map@100"]
    print(json.dumps(row))

if __name__ == "__main__":
    main()
