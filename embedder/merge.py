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

    python -m embedder.merge MODEL_A MODEL_B --weight 0.7 --output DIR     # w · A + (1 − w) · B
"""

from __future__ import annotations

import click
import torch

from .errors import UserError, one_line_errors

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


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model_a")
@click.argument("model_b")
@click.option("--weight", required=True, type=float, help="w in w · A + (1 − w) · B, from 0 to 1")
@click.option("--output", required=True, help="folder for the merged model (A's pooling, prompts, tokenizer)")
def main(model_a, model_b, weight, output):
    """Merge two models of one architecture: w · MODEL_A + (1 − w) · MODEL_B, saved as a sentence-transformers
    folder."""
    with one_line_errors():
        if not 0 <= weight <= 1:
            raise UserError(f"--weight {weight}: give a number from 0 to 1")
        from . import output_paths
        from .pipeline import load
        from pathlib import Path
        inputs = [(flag, name) for flag, name in (("MODEL_A", model_a), ("MODEL_B", model_b)) if Path(name).exists()]
        output_paths.check_output(output, "--output", inputs)
        if Path(output).exists() and any(Path(output).iterdir()):
            raise UserError(f"--output {output} already holds files; choose a new folder")
        a, b = load(model_a, device="cpu"), load(model_b, device="cpu")
        if a.hf_config.get("model_type") != b.hf_config.get("model_type"):
            raise UserError(f"MODEL_A is {a.hf_config.get('model_type')} and MODEL_B is {b.hf_config.get('model_type')}"
                            "; merge two models of the same architecture")
        a.load_state_dict(merge_states(a.state_dict(), b.state_dict(), weight, (model_a, model_b)))
        a.passthrough = merge_states(a.passthrough, b.passthrough, weight, (model_a, model_b))  # unused tensors
        a.save(output)
        print(f"saved {weight:g} · {model_a} + {1 - weight:g} · {model_b} to {output}")


if __name__ == "__main__":
    main()


__all__ = ["choose_weight", "merge_states", "search", "table"]
