"""Weight merging of a fine-tuned model with its base (or of any two models of one architecture).

    merged = w · fine_tuned + (1 − w) · base          for every weight tensor (LM-Cocktail-style linear merge)

Merging back towards the base gives up some of the domain gain for some of the general retrieval fine-tuning may
have cost. After training (`--merge auto`, the default) w is searched over {0.5, 0.6, …, 1.0}: every w is scored on
the validation set(s) and the forgetting check's general set(s); the w with the best validation metric among those
whose general cosine_map@100 stays within --max-general-drop of the base's is kept (ties: the larger w). The
unmerged model (w = 1.0) is one of them when its own general drop is within the bound — then no merge is kept
unless one scores higher on validation; when it is not, the guard wins over the domain metric. When no w keeps
general retrieval within the bound, the unmerged model is kept (and the forgetting check warns). `--merge 0.7`
fixes w, `--merge off` skips it. The merged model is the fine-tuned model's folder with merged weights: pooling,
normalisation, prompts and tokenizer kept.

    python -m embedder merge MODEL_A MODEL_B --weight 0.7 --output DIR     # w · A + (1 − w) · B
"""

from __future__ import annotations

import torch

from ..errors import UserError
from ..model.embedder import load
from .tracking import changes

GRID = (0.5, 0.6, 0.7, 0.8, 0.9)  # and 1.0, the unmerged model


def merge_states(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], weight: float, names=("A", "B")):
    """w · a + (1 − w) · b, tensor by tensor, computed in float32 and stored in a's dtype; UserError when the two
    do not have the same tensors and shapes (not one architecture)."""
    if set(a) != set(b) or any(a[k].shape != b[k].shape for k in a):
        different = sorted(set(a) ^ set(b)) or [k for k in a if a[k].shape != b[k].shape]
        raise UserError(f"{names[0]} and {names[1]} are not one architecture (they differ at {different[0]!r}); "
                        "merge two models of the same architecture and size")
    return {k: (weight * a[k].float() + (1 - weight) * b[k].float()).to(a[k].dtype) for k in a}


def choose_weight(scores: dict[float, dict], select_metric: str, general_keys: list[str], base: dict,
                  max_general_drop: float) -> float:
    """The merge weight `--merge auto` keeps (see the module docstring). scores: w -> metrics, 1.0 included."""
    def general_ok(w):
        return all(base[k] - scores[w][k] <= max_general_drop for k in general_keys if k in base and k in scores[w])

    eligible = [w for w in sorted(scores) if general_ok(w)]
    return max(eligible, key=lambda w: (scores[w][select_metric], w)) if eligible else 1.0


def search(model, base_state: dict, evaluate, final_metrics: dict, choice, select_metric, general_keys, base_metrics,
           max_general_drop: float) -> tuple[float, dict[float, dict]]:
    """Score the merges of `model` (the fine-tuned weights) with `base_state`; leave the model holding the chosen
    one. choice: "auto" or a fixed weight. evaluate(model, w) -> metrics. Returns (w, {w: metrics})."""
    tuned = {k: v.detach().clone() for k, v in model.state_dict().items()}
    scores = {1.0: final_metrics}
    for w in (GRID if choice == "auto" else (float(choice),)):
        if w != 1.0:
            model.load_state_dict(merge_states(tuned, base_state, w))
            scores[w] = evaluate(model, w)
    chosen = choose_weight(scores, select_metric, general_keys, base_metrics, max_general_drop) \
        if choice == "auto" else float(choice)
    model.load_state_dict(tuned if chosen == 1.0 else merge_states(tuned, base_state, chosen))
    return chosen, scores


def table(scores: dict[float, dict], chosen: float, keys: list[str]) -> str:
    """Markdown: one row per merge weight, the chosen one marked."""
    rows = ["| w (fine-tuned share) | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for w in sorted(scores):
        mark = " (kept)" if w == chosen else ""
        rows.append(f"| {w:.1f}{mark} | " + " | ".join(f"{scores[w].get(k, float('nan')):.4f}" for k in keys) + " |")
    return "\n".join(rows)


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


def merge_with_base(config, model, trainer, final_metrics, base_metrics, context, echo):
    """--merge: (the kept weight, {w: metrics}) after leaving the model merged with its base as `search`
    decides, or None when off, without evaluation, or under torchrun (python -m embedder.merge does it there)."""
    if config.settings.merge == "off" or not final_metrics or not config.select_metric or context.enabled:
        return None
    base_state = {k: v.detach() for k, v in load(config.settings.base, device=model.device).state_dict().items()}
    ranks = {1.0: dict(trainer.tracker.last_ranks)}

    def evaluate(merged_model, w):
        metrics = trainer.tracker.evaluate(merged_model)
        ranks[w] = dict(trainer.tracker.last_ranks)
        return metrics

    echo("scoring merges with the base model…")
    chosen, scores = search(model, base_state, evaluate, final_metrics, config.settings.merge, config.select_metric,
                            trainer.tracker.general_keys, base_metrics, config.settings.max_general_drop)
    trainer.tracker.last_ranks = ranks[chosen]
    echo(table(scores, chosen, [config.select_metric, *trainer.tracker.general_keys]))
    return chosen, scores


def forgetting_check(max_general_drop: float, general_keys, base_metrics, final_metrics, select_metric, echo) -> None:
    """The domain gain beside the general sets' change, and a warning for a general drop past --max-general-drop."""
    general_keys = [k for k in general_keys if k in base_metrics and k in final_metrics]
    if not general_keys or select_metric not in base_metrics:
        return
    echo(f"forgetting check (cosine_map@100 since the base model): "
         f"{changes(final_metrics, base_metrics, select_metric, general_keys)}")
    for key in general_keys:
        drop = base_metrics[key] - final_metrics[key]
        if drop > max_general_drop:
            echo(f"WARNING: general retrieval fell by {drop:.4f} {key} ({base_metrics[key]:.4f} -> "
                 f"{final_metrics[key]:.4f}), more than --max-general-drop {max_general_drop:g}: the model "
                 "may have forgotten what it knew; lower --lr or train fewer epochs", err=True)


__all__ = ["choose_weight", "forgetting_check", "merge_states", "merge_with_base", "search", "table", "verdict"]
