"""Quality on aipolicy (train -> test), one row per configuration and seed: map@100 before and after, wall time.

    python benchmarks/quality_aipolicy.py --base all-MiniLM-L6-v2 --batch-size 16 --dims none \
        --variant random --variant no_duplicates --variant random+mask --seeds 42,1,2

Each run trains through train.train() exactly as `python train.py` does (--epochs, default 1; validation on val.json
at each epoch end picks the best model unless --keep-last) and is scored on test.json with embedder's evaluator
(equal to ST's, tests/eval/test_ir.py). Prints a markdown table; never run as a test.
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
@click.option("--merge-grid", is_flag=True,
              help="after training (merge off), score every merge with the base on val, general and test, and "
                   "what --merge auto keeps")
@click.option("--json-out", default=None)
def main(base, data, batch_size, epochs, dims, weights, variants, seeds, keep_last, precisions, merge, merge_grid,
         json_out):
    import embedder
    from embedder.cli import parse_dims, parse_merge, parse_weights
    from embedder.data.formats import load_ir
    from embedder.eval.ir import InformationRetrievalEvaluator
    from embedder.train.config import TrainConfig
    from embedder.train.run import train

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
                                 keep_best=not keep_last, precision=precision,
                                 merge="off" if merge_grid else parse_merge(merge))
            started = time.time()
            result = train(config, echo=lambda *a, **k: None)
            seconds = time.time() - started
            model = embedder.load(f"{tmp}/model", device="cpu")
            score_dims = [None] + ([int(d) for d in dims.split(",")][-1:] if dims != "none" else [])
            test_evaluator = InformationRetrievalEvaluator(test.queries, test.corpus, test.relevant,
                                                           dims=tuple(score_dims))
            metrics = test_evaluator(model)
        row = {"variant": variant, "precision": precision, "seed": seed, "map@100": metrics["cosine_map@100"],
               "seconds": seconds}
        if len(score_dims) > 1:
            row[f"dim_{score_dims[1]} map@100"] = metrics[f"dim_{score_dims[1]}_cosine_map@100"]
        if merge_grid:
            row.update(score_merges(config, result, model, test_evaluator))
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n{base}, batch {batch_size}, {epochs} epoch(s), dims {dims}, merge {merge}; {platform.processor() or platform.machine()}, "
          f"python {platform.python_version()}\n")
    keys = [k for k in rows[0] if k != "grid"]
    print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for row in [{k: v for k, v in r.items() if k != "grid"} for r in rows]:
        print("| " + " | ".join(f"{row[k]:.4f}" if isinstance(row[k], float) else str(row[k]) for k in keys) + " |")
    for variant in variants:
        for precision in precisions:
            values = [r["map@100"] for r in rows if r["variant"] == variant and r["precision"] == precision]
            spread = f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else ""
            print(f"{variant}, {precision}: mean map@100 {statistics.mean(values):.4f}{spread} over {len(values)} "
                  "seed(s)")
    for row in rows if merge_grid else []:
        print(f"\nseed {row['seed']}, {row['variant']}: w -> validation / general / test cosine_map@100 "
              f"(base: general {row['general base']:.4f}, test {row['test base']:.4f})")
        print("| w | validation | general | test |\n|---|---|---|---|")
        for w, (val, general, tested) in sorted(row["grid"].items()):
            kept = " (kept)" if w == row["merge w"] else ""
            print(f"| {w:.1f}{kept} | {val:.4f} | {general:.4f} | {tested:.4f} |")
    if json_out:
        Path(json_out).write_text(json.dumps(rows, indent=1))


def score_merges(config, result, model, test_evaluator) -> dict:
    """--merge auto replayed on the trained (unmerged) model: every w scored on validation and general exactly as
    training scores them (same evaluators, the run's autocast), and on test in fp32; the w auto keeps."""
    from embedder.data import specs as data_specs
    from embedder.eval.ir import InformationRetrievalEvaluator
    from embedder.model.embedder import load
    from embedder.train import forgetting as merge
    from embedder.train.config import DEFAULT_SELECT

    plan = result.config
    evaluators = [InformationRetrievalEvaluator(ir.queries, ir.corpus, ir.relevant, name=name, dims=plan.eval_dims,
                                                batch_size=config.eval_batch_size, compute_precision=plan.precision)
                  for name, ir in zip(plan.eval_names, map(data_specs.load_eval_set, config.eval))]
    general_names = [f"general_{data_specs.set_name(spec)}" for spec in config.general_sets]
    evaluators += [InformationRetrievalEvaluator(ir.queries, ir.corpus, ir.relevant, name=name,
                                                 batch_size=config.eval_batch_size, compute_precision=plan.precision)
                   for name, ir in zip(general_names, map(data_specs.load_eval_set, config.general_sets))]
    general_keys = [f"{name}_{DEFAULT_SELECT}" for name in general_names]
    tests = {1.0: test_evaluator(model)["cosine_map@100"]}

    def evaluate(merged, w):
        tests[w] = test_evaluator(merged)["cosine_map@100"]
        return {k: v for e in evaluators for k, v in e(merged).items()}

    base = load(config.base, device="cpu")
    base_state = {k: v.detach() for k, v in base.state_dict().items()}
    unmerged = {k: v for e in evaluators for k, v in e(model).items()}
    chosen, scores = merge.search(model, base_state, evaluate, unmerged, "auto", plan.select_metric, general_keys,
                                  result.base_metrics, config.max_general_drop)
    general = general_keys[0]
    return {"merge w": chosen, "test merged": tests[chosen], "test base": test_evaluator(base)["cosine_map@100"],
            "general base": result.base_metrics[general], "general unmerged": scores[1.0][general],
            "general merged": scores[chosen][general],
            "grid": {w: (scores[w][plan.select_metric], scores[w][general], tests[w]) for w in scores}}


if __name__ == "__main__":
    main()
