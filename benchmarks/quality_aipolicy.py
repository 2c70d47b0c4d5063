"""Quality on aipolicy (train -> test), one row per configuration and seed: map@100 before and after, wall time.

    python benchmarks/quality_aipolicy.py --base all-MiniLM-L6-v2 --batch-size 16 --dims none \
        --variant random --variant no_duplicates --variant random+mask --seeds 42,1,2

Each run trains through train.train() exactly as `python train.py` does (--epochs, default 1; validation on val.json
at each epoch end picks the best model unless --keep-last) and is scored on test.json with embedder's evaluator
(equal to ST's, tests/test_evaluation.py). Prints a markdown table; never run as a test.
"""

import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VARIANTS = {"random": ("random", False, None), "no_duplicates": ("no_duplicates", False, None),
            "random+mask": ("random", True, None), "no_duplicates+mask": ("no_duplicates", True, None),
            "no_duplicates+fn0.1": ("no_duplicates", False, 0.1)}  # fn: --mask-false-negatives 0.1


@click.command()
@click.option("--base", default="all-MiniLM-L6-v2")
@click.option("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "aipolicy"))
@click.option("--batch-size", default=16, type=int)
@click.option("--epochs", default=1, type=int)
@click.option("--dims", default="none", help="Matryoshka dims (comma list) or none")
@click.option("--weights", default=None, help="Matryoshka weights (comma list, same order as --dims)")
@click.option("--variant", "variants", multiple=True, default=["random", "no_duplicates"])
@click.option("--seeds", default="42")
@click.option("--keep-last", is_flag=True, help="score the last model instead of the best by validation map@100")
@click.option("--precision", "precisions", multiple=True, default=["fp32"],
              help="training precision(s), side by side (the test set is always scored in fp32)")
@click.option("--merge", default="off", show_default=True,
              help="train.py's --merge: off measures the training alone (as ST's trainer), auto its default")
@click.option("--json-out", default=None)
def main(base, data, batch_size, epochs, dims, weights, variants, seeds, keep_last, precisions, merge, json_out):
    import embedder
    from embedder.data import load_ir
    from embedder.evaluation import InformationRetrievalEvaluator
    from embedder.recipe import train
    from embedder.train_config import TrainConfig, parse_dims, parse_merge, parse_weights

    test = load_ir(Path(data) / "test.json")
    rows = []
    runs = [(variant, precision, int(seed)) for variant in variants for seed in seeds.split(",")
            for precision in precisions]  # precisions alternate, so a busy machine slows both alike
    for variant, precision, seed in runs:
        sampler, mask, margin = VARIANTS[variant]
        with tempfile.TemporaryDirectory() as tmp:
            config = TrainConfig(base=base, train=(str(Path(data) / "train.json"),),
                                 eval=(str(Path(data) / "val.json"),), output=f"{tmp}/model", epochs=epochs,
                                 batch_size=batch_size, seed=seed, matryoshka_dims=parse_dims(dims),
                                 matryoshka_weights=parse_weights(weights),
                                 sampler=sampler, mask_duplicates=mask, mask_false_negatives=margin, eval_steps=None,
                                 keep_best=not keep_last, precision=precision, merge=parse_merge(merge))
            started = time.time()
            train(config, echo=lambda *a, **k: None)
            seconds = time.time() - started
            model = embedder.load(f"{tmp}/model", device="cpu")
            score_dims = [None] + ([int(d) for d in dims.split(",")][-1:] if dims != "none" else [])
            metrics = InformationRetrievalEvaluator(test.queries, test.corpus, test.relevant,
                                                    dims=tuple(score_dims))(model)
        row = {"variant": variant, "precision": precision, "seed": seed, "map@100": metrics["cosine_map@100"],
               "seconds": seconds}
        if len(score_dims) > 1:
            row[f"dim_{score_dims[1]} map@100"] = metrics[f"dim_{score_dims[1]}_cosine_map@100"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n{base}, batch {batch_size}, {epochs} epoch(s), dims {dims}, merge {merge}; {platform.processor() or platform.machine()}, "
          f"python {platform.python_version()}\n")
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(f"{row[k]:.4f}" if isinstance(row[k], float) else str(row[k]) for k in keys) + " |")
    for variant in variants:
        for precision in precisions:
            values = [r["map@100"] for r in rows if r["variant"] == variant and r["precision"] == precision]
            spread = f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else ""
            print(f"{variant}, {precision}: mean map@100 {statistics.mean(values):.4f}{spread} over {len(values)} "
                  "seed(s)")
    if json_out:
        Path(json_out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
