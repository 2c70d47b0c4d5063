"""The end of a training run: the chosen weights, checked finite; the final evaluation; the model folder with its
card, settings, plan, log and per-query changes; the before/after table and the warnings (worse than the base,
collapsed embeddings). Called by embedder/recipe.py once the end-of-training checkpoint is safe on disk.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import data_specs
from .plan import DEFAULT_SELECT, Plan
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


def finish(config, plan, model, trainer, train_pairs, eval_sets, base_metrics, context, echo) -> TrainingResult:
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
    started = time.perf_counter()
    merged = merge_with_base(config, plan, model, trainer, final_metrics, base_metrics, context, echo)
    trainer.state.eval_seconds += time.perf_counter() - started
    if merged:
        final_metrics = merged[1][merged[0]]
    model.eval()
    if not context.is_main:
        distributed.barrier(context)
        return TrainingResult(model, plan=plan, output=config.output)

    select_metric = plan.select_metric
    general_keys = [k for k in trainer.tracker.general_keys if k in base_metrics and k in final_metrics]
    judgement = verdict(base_metrics, final_metrics, select_metric, general_keys, config.max_general_drop) \
        if select_metric in base_metrics and select_metric in final_metrics else ""
    facts = card_facts(config, plan, model, trainer, train_pairs, eval_sets, base_metrics, final_metrics)
    facts.verdict = judgement
    if merged:
        keys = [k for k in (plan.select_metric, *trainer.tracker.general_keys) if k]
        facts.merge_table = merge.table(merged[1], merged[0], keys)
    card = model_card.render(model, facts)
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
    cost = facts.cost
    echo(f"\ntrained {trainer.state.step} steps in {cost['train_seconds']:.0f} s ({cost['pairs_per_second']:.1f} "
         f"pairs/s in {cost['step_seconds']:.0f} s of steps, evaluation {cost['eval_seconds']:.0f} s, "
         f"{cost['precision']} on {cost['device']}); saved the model of step {chosen_step}{merged_text} to {out}")
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
        if judgement:
            echo(f"verdict: {judgement}")
        passages = list(eval_sets[0][1].corpus.values())
        collapse = mean_offdiagonal_cosine(model, passages, config.eval_batch_size)
        if collapse > 0.95:
            echo(f"\nWARNING: the embeddings have COLLAPSED (mean cosine between different passages {collapse:.3f}); "
                 "lower --lr or use --precision fp32", err=True)
    return TrainingResult(model, final_metrics, base_metrics, plan, str(out))




MARGINAL = 0.005  # a change of the selection metric within ± this is "marginal" (the issues' tolerance)


def verdict(base: dict, final: dict, select_metric: str, general_keys: list[str], max_general_drop: float) -> str:
    """One line: improved / marginal / regressed against the base on the validation metric (± MARGINAL), and for
    each general set whether it held within --max-general-drop."""
    gain = final[select_metric] - base[select_metric]
    word = "improved" if gain > MARGINAL else "regressed" if gain < -MARGINAL else "marginal"
    parts = [f"{word} on validation ({select_metric} {base[select_metric]:.4f} -> {final[select_metric]:.4f}, "
             f"{gain:+.4f})"]
    for key in general_keys:
        change = final[key] - base[key]
        held = "held" if -change <= max_general_drop else "REGRESSED"
        parts.append(f"general retrieval {held} ({key.rsplit('_cosine', 1)[0]} {base[key]:.4f} -> {final[key]:.4f}, "
                     f"{change:+.4f}; allowed drop {max_general_drop:g})")
    return "; ".join(parts)


def card_facts(config, plan, model, trainer, train_pairs, eval_sets, base_metrics, final_metrics):
    """What the card says about this run (embedder/model_card.py), the verdict and merge table aside."""
    import tokenizers
    import torch
    import transformers

    from . import __version__
    from .model_card import CardFacts
    from .report import device_name

    state, rows = trainer.state, train_pairs[0].rows[:1000]  # ST's cards: statistics of the first 1000 samples
    column_tokens = {}
    for index, column in enumerate(train_pairs[0].columns):  # the texts as given (no prompt), truncated as trained
        lengths = [len(ids) for ids in model.tokenizer.encode_unpadded([row[index] for row in rows])]
        column_tokens[column] = (min(lengths), sum(lengths) / len(lengths), max(lengths))
    eval_labels = [data_specs.label(spec) for spec in config.eval]
    general_names = [key[:-len(DEFAULT_SELECT) - 1] for key in trainer.tracker.general_keys]
    metric_sets = {data_specs.set_name(spec): f"{name}_" if name else "" for spec, name in zip(config.eval,
                                                                                                plan.eval_names)}
    metric_sets.update({name: f"{name}_" for name in general_names})
    return CardFacts(
        base_name=config.base,
        settings={**config.to_json(), "matryoshka_dims": plan.dims, "matryoshka_weights": plan.weights,
                  "precision": f"{plan.precision} ({plan.precision_reason})"},
        non_default=config.non_defaults(),
        dataset_sizes={p.source: len(p.rows) for p in train_pairs}, columns=train_pairs[0].columns,
        column_tokens=column_tokens, samples=[tuple(row) for row in train_pairs[0].rows[:3]],
        loss_info={"loss": "MultipleNegativesRankingLoss", "scale": config.scale,
                   **({"matryoshka_dims": list(plan.dims), "matryoshka_weights": list(plan.weights),
                       "n_dims_per_step": -1} if plan.dims else {})},
        base_metrics=base_metrics, final_metrics=final_metrics, log_rows=trainer.store.log_rows,
        select_metric=plan.select_metric,
        eval_sets={label: (len(ir.queries), len(ir.corpus)) for label, (_, ir) in zip(eval_labels, eval_sets)},
        metric_sets=metric_sets, widget=widget_examples(eval_sets[0][1]) if eval_sets else [],
        cost={"device": device_name(trainer.device), "precision": f"{plan.precision} ({plan.precision_reason})",
              "train_seconds": state.step_seconds + state.eval_seconds, "step_seconds": state.step_seconds,
              "eval_seconds": state.eval_seconds, "pairs": state.pairs, "steps": state.step,
              "pairs_per_second": state.pairs / state.step_seconds if state.step_seconds else 0.0},
        versions={"embedder": __version__, "Transformers": transformers.__version__, "PyTorch": torch.__version__,
                  "Tokenizers": tokenizers.__version__})


def widget_examples(ir, count: int = 5, others: int = 2) -> list[dict]:
    """The card's widget: the first eval queries, each with its first relevant passage and the first `others`
    passages that are not relevant to it (as the seeds show a query beside an answer and two distractors)."""
    examples = []
    for qid, query in list(ir.queries.items())[:count]:
        relevant = sorted(ir.relevant.get(qid, ()))
        if not relevant or relevant[0] not in ir.corpus:
            continue
        distractors = [text for cid, text in ir.corpus.items() if cid not in ir.relevant[qid]][:others]
        examples.append({"source_sentence": query, "sentences": [ir.corpus[relevant[0]], *distractors]})
    return examples


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


__all__ = ["TrainingResult", "card_facts", "finish", "forgetting_check", "verdict", "widget_examples"]
