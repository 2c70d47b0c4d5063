"""README.md for a fine-tuned model, in the shape of the sentence-transformers model cards the seeds come from:
front matter (metric names, tags, widget examples from the eval data, `model-index` with the final metrics), the
architecture block, usage, evaluation tables, what the run cost and a one-line verdict, training details (data
with token statistics per column, loss, non-default and all hyperparameters), the training log and framework
versions. Writing the card never fails a run: any error falls back to a minimal card.
"""

from __future__ import annotations

import json
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path

import tokenizers
import torch
import transformers

from ..data import specs as data_specs
from ..model.locate import PACKAGED, ST_ORG
from ..version import __version__
from .config import DEFAULT_SELECT
from .console import device_name
from .losses import ONE_WAY


@dataclass
class CardFacts:
    """Everything a card says about one run (`card_facts` gathers it)."""
    base_name: str
    settings: dict  # every setting, as train_config.json holds them
    dataset_sizes: dict[str, int]
    columns: tuple[str, ...]
    loss_info: dict
    base_metrics: dict
    final_metrics: dict
    log_rows: list[dict]
    select_metric: str | None
    versions: dict
    non_default: dict = field(default_factory=dict)  # the settings that differ from TrainConfig's defaults
    column_tokens: dict[str, tuple[int, float, int]] = field(default_factory=dict)  # column -> min, mean, max
    samples: list[tuple[str, ...]] = field(default_factory=list)  # the first training rows
    eval_sets: dict[str, tuple[int, int]] = field(default_factory=dict)  # label -> (queries, passages)
    metric_sets: dict[str, str] = field(default_factory=dict)  # label -> its metric-key prefix ("" for a lone set)
    widget: list[dict] = field(default_factory=list)  # {"source_sentence": query, "sentences": [passages]}
    cost: dict = field(default_factory=dict)  # device, precision, train_seconds, eval_seconds, pairs_per_second
    verdict: str = ""
    merge_table: str = ""
    soup: str = ""  # the members of a soup (train/soup.py soup_table)


def _table(rows: list[tuple], header: tuple) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(":---:" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def _cell(text: str, limit: int = 300) -> str:
    """A text as a markdown table cell: one line, pipes escaped, cut at `limit` characters."""
    text = text if len(text) <= limit else text[:limit] + "…"
    return "<code>" + text.replace("|", "\\|").replace("\n", "<br>") + "</code>"


def architecture_block(model) -> str:
    backbone = {"bert": "BertModel", "mpnet": "MPNetModel"}.get(model.hf_config.get("model_type"),
                                                                 (model.hf_config.get("architectures") or ["AutoModel"])[0])
    lines = ["SentenceTransformer(",
             f"  (0): Transformer({{'max_seq_length': {model.max_seq_length}, 'do_lower_case': "
             f"{model.tokenizer.do_lower_case}}}) with Transformer model: {backbone} ",
             f"  (1): Pooling({model.pooling.config()})"]
    for module in model.dense:
        lines.append(f"  ({len(lines) - 1}): Dense({module.config()})")
    if model.normalize is not None:
        lines.append(f"  ({len(lines) - 1}): Normalize()")
    return "\n".join(lines + [")"])


def _metrics_section(title: str, metrics: dict[str, float], select_metric: str | None) -> str:
    rows = []
    for key, value in metrics.items():
        shown = f"**{key}**" if key == select_metric else key
        rows.append((shown, f"**{value:.4f}**" if key == select_metric else f"{value:.4f}"))
    return f"#### {title}\n\n" + _table(rows, ("Metric", "Value"))


def metric_groups(metrics: dict[str, float], metric_sets: dict[str, str]) -> dict[str, dict[str, float]]:
    """'{set} dim {d}' -> {plain metric name: value}: the metrics split by eval set and Matryoshka dimension, as
    ST's model-index lists one result per evaluator. A key matches the longest set prefix it starts with."""
    groups: dict[str, dict[str, float]] = {}
    by_length = sorted(metric_sets.items(), key=lambda item: -len(item[1]))
    for key, value in metrics.items():
        label, prefix = next(((label, prefix) for label, prefix in by_length if key.startswith(prefix)), ("", ""))
        rest = key[len(prefix):]
        if rest.startswith("dim_"):
            dim, rest = rest[4:].split("_", 1)
            label = f"{label} dim {dim}".strip()
        groups.setdefault(label or "eval", {})[rest] = value
    return groups


def _front_matter(facts: CardFacts, base_name: str, losses: list[str]) -> list[str]:
    # values JSON-quoted: a JSON string is a valid YAML scalar, so ' #' or ': ' in a base path cannot break it
    groups = metric_groups(facts.final_metrics, facts.metric_sets)
    front = ["---", f"base_model: {json.dumps(base_name)}", "library_name: sentence-transformers", "metrics:"]
    front += [f"- {json.dumps(name)}" for name in dict.fromkeys(name for group in groups.values() for name in group)]
    front += ["pipeline_tag: sentence-similarity", "tags:", "- sentence-transformers", "- sentence-similarity",
              "- feature-extraction", "- embedder", f"- dataset_size:{sum(facts.dataset_sizes.values())}"]
    front += [f"- loss:{loss}" for loss in losses]
    if facts.widget:
        front.append("widget:")
        for example in facts.widget:
            front.append(f"- source_sentence: {json.dumps(example['source_sentence'])}")
            front += ["  sentences:"] + [f"  - {json.dumps(text)}" for text in example["sentences"]]
    if facts.final_metrics:
        front += ["model-index:", f"- name: {json.dumps(f'SentenceTransformer based on {base_name}')}", "  results:"]
        for label, metrics in groups.items():
            front += ["  - task:", "      type: information-retrieval", "      name: Information Retrieval",
                      "    dataset:", f"      name: {json.dumps(label)}", f"      type: {json.dumps(label)}",
                      "    metrics:"]
            for name, value in metrics.items():
                pretty = " ".join(part.capitalize() for part in name.split("_"))
                front += [f"    - type: {json.dumps(name)}", f"      value: {value!r}", f"      name: {json.dumps(pretty)}"]
    return front + ["---"]


def render(model, facts: CardFacts) -> str:
    try:
        return _render(model, facts)
    except Exception as err:  # a card must never fail a finished run, but the user is told
        print(f"warning: the model card could not be rendered ({type(err).__name__}: {err}); README.md holds a "
              "minimal card", file=sys.stderr)
        return f"# Fine-tuned {facts.base_name}\n\nTrained with embedder. (The full model card could not be written: " \
               f"{err}.)\n"


def _log_table(log_rows: list[dict], select_metric: str | None) -> list[tuple]:
    """One row per logged step: the training loss where it was logged, the selection metric where evaluated."""
    by_step: dict[int, dict] = {}
    for row in log_rows:
        merged = by_step.setdefault(row.get("step", 0), {})
        merged.update({k: v for k, v in row.items() if k in ("epoch", "step", "loss", select_metric)})
    keys = [k for k in ("epoch", "step", "loss", select_metric) if k]
    return [tuple(f"{r[k]:.4f}" if isinstance(r.get(k), float) else r.get(k, "-") for k in keys)
            for _, r in sorted(by_step.items())]


def _cost_lines(cost: dict) -> list[str]:
    if not cost:
        return []
    return ["### Training Cost", "",
            f"- **Device:** {cost['device']}", f"- **Precision:** {cost['precision']}",
            f"- **Training wall time:** {cost['train_seconds']:.0f} s (of which evaluation "
            f"{cost['eval_seconds']:.0f} s)",
            f"- **Throughput:** {cost['pairs_per_second']:.1f} training pairs/s ({cost['pairs']} pairs in "
            f"{cost['steps']} steps)", ""]


def _dataset_lines(facts: CardFacts, losses: list[str]) -> list[str]:
    total = sum(facts.dataset_sizes.values())
    lines = ["### Training Dataset", "",
             "* Dataset: " + ", ".join(f"`{name}` ({size} pairs)" for name, size in facts.dataset_sizes.items()),
             f"* Size: {total} training samples",
             f"* Columns: {', '.join(facts.columns[:-1])} and {facts.columns[-1]}"]
    if facts.column_tokens:
        counted = min(next(iter(facts.dataset_sizes.values())), 1000)  # counted in the first data set
        details = [f"<ul><li>min: {lo} tokens</li><li>mean: {mean:.2f} tokens</li><li>max: {hi} tokens</li></ul>"
                   for lo, mean, hi in facts.column_tokens.values()]
        lines += [f"* Approximate statistics based on the first {counted} samples:",
                  _table([("type", *["string"] * len(details)), ("details", *details)],
                         ("", *facts.column_tokens))]
    if facts.samples:
        lines += ["* Samples:", _table([tuple(_cell(text) for text in row) for row in facts.samples], facts.columns)]
    return lines + ["* Loss: " + " with ".join(losses), "```json", json.dumps(facts.loss_info, indent=2), "```", ""]


def _render(model, facts: CardFacts) -> str:
    base_name = facts.base_name
    final_metrics, base_metrics, select_metric = facts.final_metrics, facts.base_metrics, facts.select_metric
    losses = ["MatryoshkaLoss", "MultipleNegativesRankingLoss"] if facts.loss_info.get("matryoshka_dims") else \
        ["MultipleNegativesRankingLoss"]
    if "/" not in base_name and base_name.lower() in PACKAGED:  # the seeds name the hub id
        base_name = f"{ST_ORG}/{PACKAGED[base_name.lower()].name}"
    example = [facts.widget[0]["source_sentence"], *facts.widget[0]["sentences"][:2]] if facts.widget else \
        ["What rights do people have?", "People have the right to opt out."]
    body = [f"# SentenceTransformer based on {base_name}", "",
            f"This is a [sentence-transformers](https://www.SBERT.net) model finetuned from {base_name} with "
            f"embedder. It maps sentences & paragraphs to a {model.embedding_dimension}-dimensional dense vector "
            "space and can be used for semantic textual similarity, semantic search, clustering and retrieval.", ""]
    if facts.verdict:
        body += [f"**Verdict:** {facts.verdict}", ""]
    body += ["## Model Details", "", "### Model Description",
             "- **Model Type:** Sentence Transformer", f"- **Base model:** {base_name}",
             f"- **Maximum Sequence Length:** {model.max_seq_length} tokens",
             f"- **Output Dimensionality:** {model.embedding_dimension} dimensions",
             "- **Similarity Function:** Cosine Similarity", "",
             "### Model Sources", "",
             "- **Documentation:** [Sentence Transformers Documentation](https://sbert.net)",
             "- **Repository:** [Sentence Transformers on GitHub](https://github.com/UKPLab/sentence-transformers)",
             "- **Hugging Face:** [Sentence Transformers on Hugging Face]"
             "(https://huggingface.co/models?library=sentence-transformers)", "",
             "### Full Model Architecture", "", "```", architecture_block(model), "```", "",
             "## Usage", "", "### Direct Usage (Sentence Transformers)", "", "```bash",
             "pip install -U sentence-transformers", "```", "", "```python",
             "from sentence_transformers import SentenceTransformer", "",
             'model = SentenceTransformer("path/to/this/folder")',
             "sentences = [" + ", ".join(json.dumps(text, ensure_ascii=False) for text in example) + "]",
             "embeddings = model.encode(sentences)",
             f"print(embeddings.shape)  # [{len(example)}, {model.embedding_dimension}]",
             "similarities = model.similarity(embeddings, embeddings)",
             f"print(similarities.shape)  # [{len(example)}, {len(example)}]",
             "```", ""]
    if facts.eval_sets or final_metrics:
        body += ["## Evaluation", "", "### Metrics", ""]
    if facts.eval_sets:
        body += ["* Evaluated on: " + "; ".join(f"`{name}` ({queries} queries, {passages} passages)"
                                                 for name, (queries, passages) in facts.eval_sets.items()), ""]
    if final_metrics:
        body += [_metrics_section("Information Retrieval (fine-tuned)", final_metrics, select_metric), ""]
    if base_metrics:
        rows = [(k, f"{base_metrics[k]:.4f}", f"{final_metrics.get(k, float('nan')):.4f}") for k in base_metrics]
        body += ["#### Base model vs fine-tuned", "", _table(rows, ("Metric", "Base", "Fine-tuned")), ""]
    if facts.soup:
        body += ["#### Model soup", "", "The model is the uniform average of these runs' chosen weights:", "",
                 facts.soup, ""]
    if facts.merge_table:
        body += ["#### Merge with the base model", "", facts.merge_table, ""]
    body += ["## Training Details", ""] + _cost_lines(facts.cost) + _dataset_lines(facts, losses)
    body += ["### Training Hyperparameters", "", "#### Non-Default Hyperparameters", ""]
    body += [f"- `{k}`: {v}" for k, v in facts.non_default.items()] or ["(none: every setting at its default)"]
    body += ["", "#### All Hyperparameters", "<details><summary>Click to expand</summary>", ""]
    body += [f"- `{k}`: {v}" for k, v in facts.settings.items()] + ["", "</details>"]
    if facts.log_rows:
        headers = tuple({"epoch": "Epoch", "step": "Step", "loss": "Training Loss"}.get(k, k)
                        for k in ("epoch", "step", "loss", select_metric) if k)
        body += ["", "### Training Logs", "", _table(_log_table(facts.log_rows, select_metric), headers)]
    body += ["", "### Framework Versions", f"- Python: {platform.python_version()}"]
    body += [f"- {name}: {version}" for name, version in facts.versions.items()]
    body += ["", "## Citation", "", "### BibTeX", "", "```bibtex", "@inproceedings{reimers-2019-sentence-bert,",
             '  title = "Sentence-BERT: Sentence Embeddings using Siamese BERT-Networks",',
             '  author = "Reimers, Nils and Gurevych, Iryna",', '  booktitle = "EMNLP 2019",', "}", "```", ""]
    return "\n".join(_front_matter(facts, base_name, losses) + [""] + body)


def card_facts(config, model, trainer, train_pairs, eval_sets, base_metrics, final_metrics):
    """What the card says about this run, the verdict and merge table aside."""
    state, rows = trainer.state, train_pairs[0].rows[:1000]  # ST's cards: statistics of the first 1000 samples
    column_tokens = {}
    for index, column in enumerate(train_pairs[0].columns):  # the texts as given (no prompt), truncated as trained
        lengths = [len(ids) for ids in model.tokenizer.encode_unpadded([row[index] for row in rows])]
        column_tokens[column] = (min(lengths), sum(lengths) / len(lengths), max(lengths))
    specs = [*config.settings.eval, *[ir for _, ir in eval_sets[len(config.settings.eval):]]]  # + held out
    eval_labels = [shown_name(data_specs.label(spec)) for spec in specs]
    general_names = [key[:-len(DEFAULT_SELECT) - 1] for key in trainer.tracker.general_keys]
    metric_sets = {data_specs.set_name(spec): f"{name}_" if name else "" for spec, name in zip(specs,
                                                                                                config.eval_names)}
    metric_sets.update({name: f"{name}_" for name in general_names})
    settings = {**config.settings.to_json(), "matryoshka_dims": config.dims, "matryoshka_weights": config.weights,
                "precision": f"{config.precision} ({config.precision_reason})"}
    return CardFacts(
        base_name=shown_name(config.settings.base),
        settings=public_settings(settings), non_default=public_settings(config.settings.non_defaults()),
        dataset_sizes={shown_name(p.source): len(p.rows) for p in train_pairs}, columns=train_pairs[0].columns,
        column_tokens=column_tokens, samples=[tuple(row) for row in train_pairs[0].rows[:3]],
        loss_info={"loss": "MultipleNegativesRankingLoss", "scale": config.settings.scale,
                   **({"directions": list(config.settings.directions), "partition_mode": config.settings.partition_mode}
                      if config.settings.directions != ONE_WAY else {}),
                   **({"matryoshka_dims": list(config.dims), "matryoshka_weights": list(config.weights),
                       "n_dims_per_step": -1} if config.dims else {})},
        base_metrics=base_metrics, final_metrics=final_metrics, log_rows=trainer.store.log_rows,
        select_metric=config.select_metric,
        eval_sets={label: (len(ir.queries), len(ir.corpus)) for label, (_, ir) in zip(eval_labels, eval_sets)},
        metric_sets=metric_sets, widget=widget_examples(eval_sets[0][1]) if eval_sets else [],
        cost={"device": device_name(trainer.device), "precision": f"{config.precision} ({config.precision_reason})",
              "train_seconds": state.step_seconds + state.eval_seconds, "step_seconds": state.step_seconds,
              "eval_seconds": state.eval_seconds, "pairs": state.pairs, "steps": state.step,
              "pairs_per_second": state.pairs / state.step_seconds if state.step_seconds else 0.0},
        versions={"embedder": __version__, "Transformers": transformers.__version__, "PyTorch": torch.__version__,
                  "Tokenizers": tokenizers.__version__})


def shown_name(name: str) -> str:
    """How the card names a data set or a base model: a local file or folder by its name alone (a card travels;
    the machine's paths stay home), anything else (stdlib:train, a hub id, an in-memory set) as it is."""
    path = Path(name).expanduser()
    return path.name if path.exists() or path.is_absolute() or name.startswith((".", "~")) else name


def public_settings(settings: dict) -> dict:
    """The settings as a card shows them: data sets by name (`shown_name`), the output folder left out."""
    shown = {k: v for k, v in settings.items() if k != "output"}
    for key in ("base", "train", "eval", "eval_general"):
        if isinstance(shown.get(key), str):
            shown[key] = shown_name(shown[key])
        elif isinstance(shown.get(key), list):
            shown[key] = [shown_name(v) for v in shown[key]]
    return shown


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


__all__ = ["architecture_block", "card_facts", "CardFacts", "metric_groups", "render", "widget_examples"]
