"""A whole training run, from settings to a saved sentence-transformers folder: what `train.py` and the Python API
(`embedder.fit`) call.

    import embedder
    result = embedder.fit(base="all-MiniLM-L6-v2", train="train.json", eval="val.json", output="out/m", epochs=1)
    result.model.encode(["a question"]); result.metrics["cosine_map@100"]

Order: every cheap check first, reported together (the model name, the output location, every data set); then
the model and the run's one resolved configuration (config.py: every derived setting, checked once); the
evaluators; the Trainer (trainer.py), which plans the batches; free disk space; resume; the base evaluation;
training; the end-of-training checkpoint; then `finish`: the final evaluation, the merge search (forgetting.py),
the model card (model_card.py) and the model folder. SIGINT and SIGTERM stop it as stop_signals.py describes, and
nothing trained is thrown away (see `_train`). User mistakes are UserError (one line each); a stopped run is
TrainingStopped.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import files, runtime
from ..data import batching, holdout, specs as data_specs
from ..data.formats import skipped_line
from ..data.specs import overlap_warnings
from ..errors import UserError, collect_errors
from ..eval import regressions
from ..eval.deploy import StagingExport
from ..eval.ir import InformationRetrievalEvaluator, format_table
from ..eval.regressions import mean_offdiagonal_cosine
from ..model.embedder import load
from ..model.locate import check_name
from ..ownership import OutputChanged
from . import distributed, model_card
from .checkpoints import RunStore, needed_disk_space
from .config import DEFAULT_SELECT, RunConfig, TrainConfig, default_dims, resolve, saved_prompts
from .console import Progress, echo_lines, quiet, startup_report
from .forgetting import forgetting_check, merge_with_base, table as merge_table, verdict
from .model_card import card_facts, public_settings
from .output import check_output, hold_output
from .preflight import check_can_learn, drop_negatives_equal_to_positives
from .report_to import reporter
from .soup import soup_table, train_members
from .stop_signals import Interrupted, StopSignals
from .tracking import BestModelTracker
from .trainer import Trainer, TrainingStopped


def fit(echo=echo_lines, **settings) -> TrainingResult:
    """Fine-tune and save, from Python. Keyword arguments are TrainConfig's fields (the command line's flags with
    underscores: base, output, epochs, batch_size, lr, matryoshka_dims, …). `train` and `eval` take a file path, a
    list of paths, or data in memory: a list of (anchor, positive[, negative…]) tuples, or an IR dict
    {"questions", "corpus", "relevant_contexts"} (see embedder/data/specs.py); eval=None evaluates nothing.
    Mistakes raise embedder.UserError with the command line's one-line messages."""
    unknown = sorted(set(settings) - set(TrainConfig.__dataclass_fields__))
    if unknown:
        raise UserError(f"fit(): unknown setting {unknown[0]!r}; settings are TrainConfig's fields: "
                        f"{', '.join(TrainConfig.__dataclass_fields__)}")
    if "train" in settings:
        settings["train"] = data_specs.from_memory(settings["train"], "train", "pairs")
    if "eval" in settings:
        settings["eval"] = data_specs.from_memory(settings["eval"], "eval", "ir")
    return train(TrainConfig(**settings), echo=echo)


def train(config: TrainConfig, echo=echo_lines, step_hook=None) -> TrainingResult:
    """The whole run. step_hook(step), if given, is called after every optimiser step (benchmarks time the steps
    with it). SIGINT and SIGTERM stop it as embedder.stop_signals describes; what was trained is never thrown away
    (see _train)."""
    with StopSignals() as stop:
        return _load_and_train(config, echo, step_hook, stop)


def _load_and_train(config: TrainConfig, echo, step_hook, stop) -> TrainingResult:
    # every input is checked before the first mistake is reported: one line for each
    _, _, *loaded = collect_errors(
        lambda: check_name(config.base), lambda: check_output(config),
        *[lambda spec=spec: data_specs.load_train(spec) for spec in config.train],
        *[lambda spec=spec: (data_specs.set_name(spec), data_specs.load_eval_set(spec))
          for spec in config.eval + config.general_sets])
    train_pairs, eval_sets = loaded[:len(config.train)], loaded[len(config.train):len(config.train) + len(config.eval)]
    general_sets = [(f"general_{name}", ir) for name, ir in loaded[len(config.train) + len(config.eval):]]
    for data in [*train_pairs, *(ir for _, ir in eval_sets), *(ir for _, ir in general_sets)]:
        warning = skipped_line(data, config.max_skipped_share)  # the records a reader left out (empty texts)
        if warning:
            echo(warning, err=True)
    for index, pairs in enumerate(train_pairs):
        train_pairs[index], warning = drop_negatives_equal_to_positives(pairs)
        if warning:
            echo(warning, err=True)
    columns = {len(p.columns) for p in train_pairs}
    if len(columns) > 1:
        raise UserError(f"--train files have different column counts ({sorted(columns)}); give every file the same columns")
    held_out = None
    if config.validation_split:  # no --eval: validate on passages held out from the training pairs
        train_pairs, held_out = holdout.hold_out(train_pairs, config.validation_split, config.seed, config.batch_size)
        echo(holdout.summary(held_out, config.validation_split) if held_out else
             f"validation: none held out ({config.validation_split:g} of the pairs by passage would be fewer than "
             f"{holdout.MIN_QUESTIONS} questions, or leave less than one batch); the last step's model is kept; "
             "give --eval to validate")
        if not held_out and config.eval_general is None:
            general_sets = []  # no evaluation at all, as with --eval none
    for pairs in train_pairs:
        if len(pairs.rows) < config.batch_size:
            raise UserError(f"{pairs.source}: {len(pairs.rows)} pairs, fewer than one batch of {config.batch_size}; "
                            "lower --batch-size or add data")

    context, device = distributed.setup(config.device)
    with contextlib.ExitStack() as held:  # the output, held from the last start-up check to the end
        try:
            return _train(config, train_pairs, eval_sets, held_out, general_sets, context, device,
                          echo if context.is_main else quiet, step_hook, stop,
                          hold=lambda: held.enter_context(hold_output(config)))
        finally:
            distributed.teardown(context)


def _prepare(settings, train_pairs, eval_sets, context, device):
    """The model, set up as the resolved configuration says, and that configuration (config.py `resolve`):
    every check that needs the model happens here."""
    torch.manual_seed(settings.seed + context.rank)  # dropout masks differ between processes
    model = load(settings.base, device=device)
    if model.device.type == "cpu":
        runtime.keep_freed_memory()  # a step's large blocks reused, not faulted in again (embedder/runtime.py)
    config = resolve(settings, model, train_pairs, eval_sets, context)
    model.tokenizer.max_seq_length = config.max_seq_length
    model.prompts = saved_prompts(model.prompts, config.query_prompt, config.passage_prompt)
    if model.default_prompt_name not in model.prompts:
        model.default_prompt_name = None
    return model, config


def _train(settings, train_pairs, eval_sets, held_out, general_sets, context, device, echo, step_hook, stop,
           hold) -> TrainingResult:
    """Three phases. Before the first step an interrupt leaves no model (exit 128 + signal). During training a
    signal saves a checkpoint at the next step boundary. Once training is done its result is written to a
    checkpoint first, so a later interrupt or failed write (the final evaluation, the model folder) keeps it and
    says where. hold() takes the output (train/output.py `hold_output`) once every start-up check has passed,
    before anything is written, and returns the claim the final write honours."""
    eval_sets = eval_sets + ([("validation", held_out)] if held_out else [])
    try:
        model, config = _prepare(settings, train_pairs, eval_sets, context, device)
        evaluators = [InformationRetrievalEvaluator(
            ir.queries, ir.corpus, ir.relevant, name=name, dims=config.eval_dims, batch_size=settings.eval_batch_size,
            query_prompt=config.query_prompt or None, corpus_prompt=config.passage_prompt or None,
            compute_precision=config.precision)
            for name, (_, ir) in zip(config.eval_names, eval_sets)]
        evaluators += [InformationRetrievalEvaluator(  # the forgetting check: full size only, never selects
            ir.queries, ir.corpus, ir.relevant, name=name, batch_size=settings.eval_batch_size,
            compute_precision=config.precision) for name, ir in general_sets]
        tokenize = model.tokenizer.encode_unpadded
        train_sets = [batching.TokenizedPairs.build(p, tokenize, config.query_prompt, config.passage_prompt)
                      for p in train_pairs]
        store = RunStore(settings.checkpoint_dir, settings.save_total_limit, context)
        report = reporter(settings.report_to, settings.checkpoint_dir, Path(settings.output).name,
                          public_settings(settings.to_json())) if context.is_main else None
        store.listeners += [report] if report else []
        tracker = BestModelTracker(evaluators, config.select_metric, settings.keep_best, store,
                                   save_best_to_disk=bool(settings.save_steps), context=context, echo=echo,
                                   general_keys=[f"{name}_{DEFAULT_SELECT}" for name, _ in general_sets],
                                   average_epochs=settings.average_epochs)
        trainer = Trainer(model, config, train_sets, tracker, store, echo, context)
        check_can_learn(config, model, trainer)
        claim = hold()
        if context.is_main:
            needed = needed_disk_space(model, settings, trainer.total_steps)
            files.check_free_space(settings.output, needed, "--output")
        resumed = settings.resume and trainer.resume()
        for line in startup_report(model, config, train_sets, trainer) + ([report.hint] if report else []):
            echo(line)
        for warning in ([f"WARNING: {config.precision_warning}"] if config.precision_warning else []) + \
                overlap_warnings(train_pairs, eval_sets):
            echo(warning, err=True)
        if not resumed:
            store.clear()  # --overwrite: an earlier run's checkpoints and log go
        base_metrics = trainer.state.base_metrics if resumed else {}  # the first start's, not the checkpoint's
        if evaluators and not base_metrics:
            echo("evaluating the base model…")
            base_metrics = trainer.evaluate() if resumed else trainer.evaluate_and_track()
            trainer.state.base_metrics, trainer.state.base_ranks = base_metrics, dict(tracker.last_ranks)
        if config.select_metric and base_metrics:
            echo(f"base {config.select_metric} = {base_metrics[config.select_metric]:.4f}")
    except Interrupted as err:
        raise TrainingStopped(f"interrupted ({err.signal_name}) before the first training step; no model was written",
                              exit_code=130 if err.signal_name == "SIGINT" else 143) from None

    progress = Progress(trainer.total_steps, trainer.state.step, config.global_batch, echo, enabled=context.is_main)
    try:
        with stop.deferred():  # to the end-of-training checkpoint: an interrupt after the loop's last look waits for it
            try:
                trainer.run(progress, step_hook, stop)
            finally:
                progress.close()
            saved = trainer.save_final_checkpoint()
        if stop.requested:
            raise TrainingStopped(f"interrupted at step {trainer.state.step} ({stop.requested}): checkpoint saved to "
                                  f"{saved}; continue with --resume")
    except (Interrupted, OSError) as err:
        reason = f"interrupted ({err.signal_name})" if isinstance(err, Interrupted) else \
            f"writing a checkpoint failed ({err.strerror or err})"
        raise TrainingStopped(f"{reason} at step {trainer.state.step}; {store.where()}") from None

    members = train_members(trainer, echo, step_hook, stop) if settings.soup > 1 else []
    try:
        return finish(config, model, trainer, train_pairs, eval_sets, base_metrics, context, echo, claim, members)
    except OutputChanged:
        raise TrainingStopped(f"training finished but --output {settings.output} was written by something else while "
                              f"this run trained, and is left as it is; the trained model is safe in checkpoint "
                              f"{saved}: move that folder away and run the same command with --resume") from None
    except (Interrupted, OSError) as err:
        reason = f"interrupted ({err.signal_name})" if isinstance(err, Interrupted) else \
            f"writing the model failed ({err.strerror or err})"
        raise TrainingStopped(f"training finished but {reason}; the trained model is safe in checkpoint {saved}: "
                              f"run the same command with --resume to evaluate and write it to "
                              f"{settings.output}") from None


@dataclass
class TrainingResult:
    """What a run returns: the trained model (the best by the selection metric unless --keep-last), the metrics of
    the base and of the trained model on the eval sets, the resolved configuration it ran, and where it was
    saved."""
    model: object
    metrics: dict = field(default_factory=dict)
    base_metrics: dict = field(default_factory=dict)
    config: RunConfig | None = None
    output: str = ""


def finish(config, model, trainer, train_pairs, eval_sets, base_metrics, context, echo, claim=None,
           members=()) -> TrainingResult:
    """After training: the chosen weights (the soup of `members`, train/soup.py, when there are several), checked
    finite; the final evaluation; the model folder and its card."""
    settings = config.settings
    chosen_step = trainer.finish_weights()
    if not trainer.state.finite_steps:
        raise TrainingStopped("no training step had a finite loss (the loss was NaN/inf throughout); no model was "
                              "written: check the base model's weights, lower --lr or use --precision fp32")
    if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        raise TrainingStopped("the trained weights hold NaN/inf values; no model was written: lower --lr or use "
                              "--precision fp32")
    final_metrics = trainer.evaluate() if trainer.tracker.evaluators else {}
    started = time.perf_counter()
    merged = merge_with_base(config, model, trainer, final_metrics, base_metrics, context, echo)
    trainer.state.eval_seconds += time.perf_counter() - started
    if merged:
        final_metrics = merged[1][merged[0]]
    model.eval()
    if not context.is_main:
        distributed.barrier(context)
        return TrainingResult(model, config=config, output=settings.output)

    select_metric = config.select_metric
    general_keys = [k for k in trainer.tracker.general_keys if k in base_metrics and k in final_metrics]
    judgement = verdict(base_metrics, final_metrics, select_metric, general_keys, settings.max_general_drop) \
        if select_metric in base_metrics and select_metric in final_metrics else ""
    facts = card_facts(config, model, trainer, train_pairs, eval_sets, base_metrics, final_metrics)
    facts.verdict, facts.soup = judgement, soup_table(members, select_metric) if members else ""
    if merged:
        keys = [k for k in (config.select_metric, *trainer.tracker.general_keys) if k]
        facts.merge_table = merge_table(merged[1], merged[0], keys)
    card = model_card.render(model, facts)
    log_path = trainer.store.log_path
    public = {**public_settings(settings.to_json()), "output": Path(settings.output).name}  # no machine's paths
    soup = {"soup_members": list(members)} if members else {}
    saved_config = {**public, "resolved": config.derived_json(), **soup}
    extra_files = {"train_config.json": json.dumps(saved_config, indent=2) + "\n"}
    changes, per_query = regressions.report(trainer.state.base_ranks, trainer.tracker.last_ranks,
                                            dict(zip(config.eval_names, (ir for _, ir in eval_sets))))
    if per_query:
        extra_files["per_query_changes.jsonl"] = per_query
    if log_path.is_file():
        extra_files["training_log.jsonl"] = log_path.read_text(encoding="utf-8")
    export = StagingExport(settings.export, config.dims or (), eval_sets, echo) if settings.export else None

    def then(staging: Path):  # written into the staging folder once the model is there
        for listener in trainer.store.listeners:  # the run logs nothing more
            listener.copy_into(staging)
            listener.close()
        if export:
            export(staging)

    model.save(settings.output, model_card=card, extra_files=extra_files, claim=claim, then=then)
    out = Path(settings.output)
    if not settings.save_steps:  # the end-of-training checkpoint was only a safeguard; the model folder has it all
        shutil.rmtree(settings.checkpoint_dir, ignore_errors=True)
    distributed.barrier(context)

    merged_text = f", merged with the base at w = {merged[0]:.1f}" if merged and merged[0] != 1.0 else ""
    cost = facts.cost
    steps = " + ".join(str(m["steps"]) for m in members) if members else trainer.state.step
    averaged = trainer.state.epochs_averaged  # non-zero with --average-epochs only
    kept = f"soup of {len(members)} members" if members else \
        f"average of the weights at {averaged} epoch ends" if averaged else f"model of step {chosen_step}"
    echo(f"\ntrained {steps} steps in {cost['train_seconds']:.0f} s ({cost['pairs_per_second']:.1f} "
         f"pairs/s in {cost['step_seconds']:.0f} s of steps, evaluation {cost['eval_seconds']:.0f} s, "
         f"{cost['precision']} on {cost['device']}); saved the {kept}{merged_text} to {out}")
    if final_metrics:
        echo(format_table({"base": base_metrics, "fine-tuned": final_metrics}, list(final_metrics)))
        if config.precision != "fp32":
            echo(f"(scored under {config.precision} autocast; `python evaluate.py --model {out}` scores in fp32, as ST)")
        if select_metric and final_metrics[select_metric] < base_metrics.get(select_metric, float("-inf")):
            echo(f"\nWARNING: the fine-tuned model is WORSE than the base on {select_metric} "
                 f"({final_metrics[select_metric]:.4f} < {base_metrics[select_metric]:.4f}); "
                 "check the data, lower --lr or train fewer steps", err=True)
        for line in changes:
            echo(line)
        forgetting_check(settings.max_general_drop, trainer.tracker.general_keys, base_metrics, final_metrics,
                         select_metric, echo)
        if judgement:
            echo(f"verdict: {judgement}")
        passages = list(eval_sets[0][1].corpus.values())
        collapse = mean_offdiagonal_cosine(model, passages, settings.eval_batch_size)
        if collapse > 0.95:
            echo(f"\nWARNING: the embeddings have COLLAPSED (mean cosine between different passages {collapse:.3f}); "
                 "lower --lr or use --precision fp32", err=True)
    if export and export.failure:
        raise UserError(f"--export {','.join(settings.export)}: {export.failure} (the model itself is saved to {out})")
    return TrainingResult(model, final_metrics, base_metrics, config, str(out))


__all__ = ["TrainConfig", "TrainingResult", "TrainingStopped", "default_dims", "fit", "train"]
