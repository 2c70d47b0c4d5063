"""README.md for a fine-tuned model, in the shape of the sentence-transformers model cards the seeds come from:
front matter with the metric names and tags, the architecture block, usage, evaluation tables, training details
(data, loss, hyperparameters), the training log and framework versions. Writing the card never fails a run:
any error falls back to a minimal card.
"""

from __future__ import annotations

import json
import platform
import sys

from .bases import PACKAGED, ST_ORG


def _table(rows: list[tuple], header: tuple) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(":---:" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def architecture_block(model) -> str:
    backbone = {"bert": "BertModel", "mpnet": "MPNetModel"}.get(model.hf_config.get("model_type"),
                                                                 (model.hf_config.get("architectures") or ["AutoModel"])[0])
    lines = ["SentenceTransformer(",
             f"  (0): Transformer({{'max_seq_length': {model.max_seq_length}, 'do_lower_case': "
             f"{model.tokenizer.do_lower_case}}}) with Transformer model: {backbone} ",
             f"  (1): Pooling({model.pooling.config()})"]
    if model.normalize is not None:
        lines.append("  (2): Normalize()")
    return "\n".join(lines + [")"])


def _metrics_section(title: str, metrics: dict[str, float], select_metric: str | None) -> str:
    rows = []
    for key, value in metrics.items():
        shown = f"**{key}**" if key == select_metric else key
        rows.append((shown, f"**{value:.4f}**" if key == select_metric else f"{value:.4f}"))
    return f"#### {title}\n\n" + _table(rows, ("Metric", "Value"))


def render(model, config: dict, *, base_name: str, dataset_sizes: dict[str, int], columns: tuple[str, ...],
           loss_info: dict, base_metrics: dict, final_metrics: dict, log_rows: list[dict], select_metric: str | None,
           eval_sets: dict[str, tuple[int, int]] | None = None,
           versions: dict) -> str:
    try:
        return _render(model, config, base_name, dataset_sizes, columns, loss_info, base_metrics, final_metrics,
                       log_rows, select_metric, versions, eval_sets or {})
    except Exception as err:  # a card must never fail a finished run, but the user is told
        print(f"warning: the model card could not be rendered ({type(err).__name__}: {err}); README.md holds a "
              "minimal card", file=sys.stderr)
        return f"# Fine-tuned {base_name}\n\nTrained with embedder. (The full model card could not be written: {err}.)\n"


def _log_table(log_rows: list[dict], select_metric: str | None) -> list[tuple]:
    """One row per logged step: the training loss where it was logged, the selection metric where evaluated."""
    by_step: dict[int, dict] = {}
    for row in log_rows:
        merged = by_step.setdefault(row.get("step", 0), {})
        merged.update({k: v for k, v in row.items() if k in ("epoch", "step", "loss", select_metric)})
    keys = [k for k in ("epoch", "step", "loss", select_metric) if k]
    return [tuple(f"{r[k]:.4f}" if isinstance(r.get(k), float) else r.get(k, "-") for k in keys)
            for _, r in sorted(by_step.items())]


def _render(model, config, base_name, dataset_sizes, columns, loss_info, base_metrics, final_metrics, log_rows,
            select_metric, versions, eval_sets):
    metric_names = list(final_metrics)
    total = sum(dataset_sizes.values())
    losses = ["MatryoshkaLoss", "MultipleNegativesRankingLoss"] if loss_info.get("matryoshka_dims") else \
        ["MultipleNegativesRankingLoss"]
    if "/" not in base_name and base_name.lower() in PACKAGED:  # the seeds name the hub id
        base_name = f"{ST_ORG}/{PACKAGED[base_name.lower()].name}"
    # values JSON-quoted: a JSON string is a valid YAML scalar, so ' #' or ': ' in a base path cannot break it
    front = ["---", f"base_model: {json.dumps(base_name)}", "library_name: sentence-transformers", "metrics:"]
    front += [f"- {json.dumps(m)}" for m in metric_names]
    front += ["pipeline_tag: sentence-similarity", "tags:", "- sentence-transformers", "- sentence-similarity",
              "- feature-extraction", "- embedder", f"- dataset_size:{total}"] + [f"- loss:{l}" for l in losses]
    front.append("---")
    body = [f"# SentenceTransformer based on {base_name}", "",
            f"This is a [sentence-transformers](https://www.SBERT.net) model finetuned from {base_name} with "
            f"embedder. It maps sentences & paragraphs to a {model.embedding_dimension}-dimensional dense vector "
            "space and can be used for semantic textual similarity, semantic search, clustering and retrieval.", "",
            "## Model Details", "", "### Model Description",
            "- **Model Type:** Sentence Transformer", f"- **Base model:** {base_name}",
            f"- **Maximum Sequence Length:** {model.max_seq_length} tokens",
            f"- **Output Dimensionality:** {model.embedding_dimension} dimensions",
            "- **Similarity Function:** Cosine Similarity", "",
            "### Full Model Architecture", "", "```", architecture_block(model), "```", "",
            "## Usage", "", "### Direct Usage (Sentence Transformers)", "", "```bash", "pip install -U sentence-transformers",
            "```", "", "```python", "from sentence_transformers import SentenceTransformer", "",
            'model = SentenceTransformer("path/to/this/folder")',
            'sentences = ["What rights do people have?", "People have the right to opt out."]',
            "embeddings = model.encode(sentences)", f"print(embeddings.shape)  # [2, {model.embedding_dimension}]",
            "```", "", "## Evaluation", "", "### Metrics", ""]
    if eval_sets:
        body += ["* Evaluated on: " + "; ".join(f"`{name}` ({queries} queries, {passages} passages)"
                                                 for name, (queries, passages) in eval_sets.items()), ""]
    if final_metrics:
        body += [_metrics_section("Information Retrieval (fine-tuned)", final_metrics, select_metric), ""]
    if base_metrics:
        rows = [(k, f"{base_metrics[k]:.4f}", f"{final_metrics.get(k, float('nan')):.4f}") for k in base_metrics]
        body += ["#### Base model vs fine-tuned", "", _table(rows, ("Metric", "Base", "Fine-tuned")), ""]
    body += ["## Training Details", "", "### Training Dataset", "",
             "* Dataset: " + ", ".join(f"`{name}` ({size} pairs)" for name, size in dataset_sizes.items()),
             f"* Size: {total} training samples", f"* Columns: {', '.join(columns[:-1])} and {columns[-1]}",
             "* Loss: " + " with ".join(losses), "```json", json.dumps(loss_info, indent=2), "```", "",
             "### Training Hyperparameters", "", "#### All Hyperparameters"]
    body += [f"- `{k}`: {v}" for k, v in config.items()]
    if log_rows:
        headers = tuple({"epoch": "Epoch", "step": "Step", "loss": "Training Loss"}.get(k, k)
                        for k in ("epoch", "step", "loss", select_metric) if k)
        body += ["", "### Training Logs", "", _table(_log_table(log_rows, select_metric), headers)]
    body += ["", "### Framework Versions", f"- Python: {platform.python_version()}"]
    body += [f"- {name}: {version}" for name, version in versions.items()]
    body += ["", "## Citation", "", "### BibTeX", "", "```bibtex", "@inproceedings{reimers-2019-sentence-bert,",
             '  title = "Sentence-BERT: Sentence Embeddings using Siamese BERT-Networks",',
             '  author = "Reimers, Nils and Gurevych, Iryna",', '  booktitle = "EMNLP 2019",', "}", "```", ""]
    return "\n".join(front + [""] + body)
