"""The end of a training run: the chosen weights, checked finite; the final evaluation; the model folder with its
card, settings, plan, log and per-query changes; the before/after table and the warnings (worse than the base,
collapsed embeddings). Called by embedder/recipe.py once the end-of-training checkpoint is safe on disk.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from . import data_specs
from .plan import Plan
from .trainer import TrainingStopped


@dataclass
class TrainingResult:
    """What a run returns: the trained model (the best by the selection metric unless --keep-last), the metrics of
    the base and of the trained model on the eval sets, the plan it ran, and where it was saved."""
    model: object
    metrics: dict = field(default_factory=dict)
    base_metrics: dict = field(default_factory=dict)
    plan: Plan | None = None
    output: str = ""


def finish(config, plan, model, trainer, train_pairs, eval_sets, base_metrics, context, echo,
            train_seconds) -> TrainingResult:
    """After training: the chosen weights, checked finite; the final evaluation; the model folder and its card."""
    import torch

    from . import distributed, merge, model_card, regressions
    from .evaluation import format_table
    from .report import mean_offdiagonal_cosine

    chosen_step = trainer.finish_weights()
    if not trainer.state.finite_steps:
        raise TrainingStopped("no training step had a finite loss (the loss was NaN/inf throughout); no model was "
                              "written: check the base model's weights, lower --lr or use --precision fp32")
    if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        raise TrainingStopped("the trained weights hold NaN/inf values; no model was written: lower --lr or use "
                              "--precision fp32")
    final_metrics = trainer.evaluate() if trainer.tracker.evaluators else {}
    merged = merge_with_base(config, plan, model, trainer, final_metrics, base_metrics, context, echo)
    if merged:
        final_metrics = merged[1][merged[0]]
    model.eval()
    if not context.is_main:
        distributed.barrier(context)
        return TrainingResult(model, plan=plan, output=config.output)

    import tokenizers
    import transformers

    from . import __version__
    select_metric = plan.select_metric
    settings = {**config.to_json(), "matryoshka_dims": plan.dims, "matryoshka_weights": plan.weights,
                "precision": f"{plan.precision} ({plan.precision_reason})"}
    card = model_card.render(
        model, settings, base_name=config.base,
        dataset_sizes={p.source: len(p.rows) for p in train_pairs}, columns=train_pairs[0].columns,
        loss_info={"loss": "MultipleNegativesRankingLoss", "scale": config.scale,
                   **({"matryoshka_dims": list(plan.dims), "matryoshka_weights": list(plan.weights),
                       "n_dims_per_step": -1} if plan.dims else {})},
        base_metrics=base_metrics, final_metrics=final_metrics,
        log_rows=trainer.store.log_rows, select_metric=select_metric,
        eval_sets={data_specs.label(spec): (len(ir.queries), len(ir.corpus))
                   for spec, (_, ir) in zip(config.eval, eval_sets)},
        versions={"embedder": __version__, "Transformers": transformers.__version__, "PyTorch": torch.__version__,
                  "Tokenizers": tokenizers.__version__})
    if merged:
        keys = [k for k in (select_metric, *trainer.tracker.general_keys) if k]
        card += f"\n\n### Merge with the base model\n\n{merge.table(merged[1], merged[0], keys)}\n"
    log_path = trainer.store.log_path
    extra_files = {"train_config.json": json.dumps({**config.to_json(), "plan": plan.to_json()}, indent=2) + "\n"}
    changes, per_query = regressions.report(trainer.state.base_ranks, trainer.tracker.last_ranks,
                                            dict(zip(plan.eval_names, (ir for _, ir in eval_sets))))
    if per_query:
        extra_files["per_query_changes.jsonl"] = per_query
    if log_path.is_file():
        extra_files["training_log.jsonl"] = log_path.read_text(encoding="utf-8")
    model.save(config.output, model_card=card, extra_files=extra_files)
    out = Path(config.output)
    if not config.save_steps:  # the end-of-training checkpoint was only a safeguard; the model folder has it all
        shutil.rmtree(config.checkpoint_dir, ignore_errors=True)
    distributed.barrier(context)

    merged_text = f", merged with the base at w = {merged[0]:.1f}" if merged and merged[0] != 1.0 else ""
    echo(f"\ntrained {trainer.state.step} steps in {train_seconds:.0f} s; saved the model of step {chosen_step}"
         f"{merged_text} to {out}")
    if final_metrics:
        echo(format_table({"base": base_metrics, "fine-tuned": final_metrics}, list(final_metrics)))
        if plan.precision != "fp32":
            echo(f"(scored under {plan.precision} autocast; `python evaluate.py --model {out}` scores in fp32, as ST)")
        if select_metric and final_metrics[select_metric] < base_metrics.get(select_metric, float("-inf")):
            echo(f"\nWARNING: the fine-tuned model is WORSE than the base on {select_metric} "
                 f"({final_metrics[select_metric]:.4f} < {base_metrics[select_metric]:.4f}); "
                 "check the data, lower --lr or train fewer steps", err=True)
        for line in changes:
            echo(line)
        forgetting_check(config, trainer.tracker.general_keys, base_metrics, final_metrics, select_metric, echo)
        passages = list(eval_sets[0][1].corpus.values())
        collapse = mean_offdiagonal_cosine(model, passages, config.eval_batch_size)
        if collapse > 0.95:
            echo(f"\nWARNING: the embeddings have COLLAPSED (mean cosine between different passages {collapse:.3f}); "
                 "lower --lr or use --precision fp32", err=True)
    return TrainingResult(model, final_metrics, base_metrics, plan, str(out))




def merge_with_base(config, plan, model, trainer, final_metrics, base_metrics, context, echo):
    """--merge: (the kept weight, {w: metrics}) after leaving the model merged with its base as embedder/merge.py
    decides, or None when off, without evaluation, or under torchrun (python -m embedder.merge does it there)."""
    if config.merge == "off" or not final_metrics or not plan.select_metric or context.enabled:
        return None
    from . import merge
    from .pipeline import load
    base_state = {k: v.detach() for k, v in load(config.base, device=model.device).state_dict().items()}
    ranks = {1.0: dict(trainer.tracker.last_ranks)}

    def evaluate(merged_model, w):
        metrics = trainer.tracker.evaluate(merged_model)
        ranks[w] = dict(trainer.tracker.last_ranks)
        return metrics

    echo("scoring merges with the base model…")
    chosen, scores = merge.search(model, base_state, evaluate, final_metrics, config.merge, plan.select_metric,
                                  trainer.tracker.general_keys, base_metrics, config.max_general_drop)
    trainer.tracker.last_ranks = ranks[chosen]
    echo(merge.table(scores, chosen, [plan.select_metric, *trainer.tracker.general_keys]))
    return chosen, scores


def forgetting_check(config, general_keys, base_metrics, final_metrics, select_metric, echo) -> None:
    """The domain gain beside the general sets' change, and a warning for a general drop past --max-general-drop."""
    from .tracking import changes
    general_keys = [k for k in general_keys if k in base_metrics and k in final_metrics]
    if not general_keys or select_metric not in base_metrics:
        return
    echo(f"forgetting check (cosine_map@100 since the base model): "
         f"{changes(final_metrics, base_metrics, select_metric, general_keys)}")
    for key in general_keys:
        drop = base_metrics[key] - final_metrics[key]
        if drop > config.max_general_drop:
            echo(f"WARNING: general retrieval fell by {drop:.4f} {key} ({base_metrics[key]:.4f} -> "
                 f"{final_metrics[key]:.4f}), more than --max-general-drop {config.max_general_drop:g}: the model "
                 "may have forgotten what it knew; lower --lr or train fewer epochs", err=True)


__all__ = ["TrainingResult", "finish", "forgetting_check"]
