"""Evaluation during training and the best model so far.

At each evaluation every IR set is scored on rank 0 (the other processes wait); the row goes to the training log
and, when the selection metric improves on the best so far (strictly greater), this step becomes the best:
its weights are kept in memory with --keep-best (the default) and written to `best/` when the run saves
checkpoints. At the end `finish` loads the best weights into the model, so the saved model is the best one — ST's
`load_best_model_at_end` with `metric_for_best_model`. With --patience the run stops once that many evaluations in
a row have not improved it (HF's EarlyStoppingCallback, counted in evaluations), but only once a trained step has
been the best: while the base model (step 0) still is, the run goes on, as a run without --patience would (on
nutrition's held-out slice the base model led for the first 150 of 220 steps; stopping then gave the base back).

With --average-epochs the model the run keeps is instead the uniform average of the weights at every epoch end
(and at the last step when --max-steps ends the run mid-epoch), train/averaging.py:

    θ̄ = (1/E) Σ_e θ_e        e = the E epoch ends reached (a run stopped by --patience: those before the stop)

a running sum of O(1) extra memory, written into each checkpoint (AVERAGE_FILE) so --resume continues it. The
evaluations still log, report and drive --patience; the best checkpoint is kept only if no epoch end was reached.
"""

from __future__ import annotations

from ..eval.ir import InformationRetrievalEvaluator
from ..eval.regressions import ranks_of
from . import checkpoints, distributed
from .averaging import RunningAverage
from .checkpoints import RunStore

AVERAGE_FILE = "epoch_average.safetensors"  # in a checkpoint: Σ θ_e of the epoch ends so far (float32)


def changes(metrics: dict, base: dict, domain_key: str, general_keys: list[str]) -> str:
    """'domain +0.0640 / general stdlib_test -0.0120': each metric's change since the base model."""
    parts = [f"domain {metrics[domain_key] - base[domain_key]:+.4f}"]
    parts += [f"general {key.split('_', 1)[1].rsplit('_cosine', 1)[0]} {metrics[key] - base[key]:+.4f}"
              for key in general_keys if key in metrics and key in base]
    return " / ".join(parts)


class BestModelTracker:
    def __init__(self, evaluators: list[InformationRetrievalEvaluator], select_metric: str | None, keep_best: bool,
                 store: RunStore, save_best_to_disk: bool, context: distributed.Context, echo,
                 general_keys: list[str] = (), average_epochs: bool = False):
        self.evaluators, self.select_metric, self.keep_best = evaluators, select_metric, keep_best
        self.general_keys = list(general_keys)  # the forgetting check's metrics: reported, never selected
        self.store, self.save_best_to_disk, self.context, self.echo = store, save_best_to_disk, context, echo
        self.best_weights: dict | None = None
        self.last_ranks: dict[str, dict] = {}  # eval set name -> query id -> rank of its first relevant passage
        self.epoch_average = RunningAverage() if average_epochs else None  # --average-epochs

    def evaluate(self, model) -> dict[str, float]:
        """Metrics on every eval set (rank 0 only; the other processes wait); the model is left in train mode.
        Each query's rank of its first relevant passage is kept in `last_ranks` (embedder/eval/regressions.py)."""
        metrics = {}
        if self.context.is_main:
            for evaluator in self.evaluators:
                values, per_query = evaluator.evaluate(model)
                metrics.update(values)
                self.last_ranks[evaluator.name] = ranks_of(per_query)
        distributed.barrier(self.context)
        model.train()
        return metrics

    def track(self, model, metrics: dict, state, epoch: float) -> None:
        """Log an evaluation of `state.step`; make it the best when the selection metric improved."""
        self.store.log({"step": state.step, "epoch": epoch, **metrics})
        value = metrics.get(self.select_metric) if self.select_metric else None
        if value is None:
            return
        self.echo(f"  step {state.step} (epoch {epoch}): {self.select_metric} = {value:.4f}"
                  + (f" ({changes(metrics, state.base_metrics, self.select_metric, self.general_keys)})"
                     if state.base_metrics else ""))
        state.evals_since_best += 1
        if state.best_metric is None or value > state.best_metric:
            state.best_metric, state.best_step, state.evals_since_best = value, state.step, 0
            if self.keep_best:
                self.best_weights = checkpoints.model_state(model)
                if self.save_best_to_disk:
                    self.store.save_best(self.best_weights, state.step, value)

    def out_of_patience(self, state, patience: int | None, device) -> bool:
        """--patience: whether the last `patience` evaluations all failed to improve the select metric, the best
        being a trained step (not the base model's step 0); decided on rank 0, where the metrics are, for every
        process."""
        tired = bool(patience) and bool(state.best_step) and state.evals_since_best >= patience
        if not distributed.broadcast_flag(tired, self.context, device):
            return False
        self.echo(f"  stopped at step {state.step}: no better {self.select_metric} in {patience} evaluations "
                  f"(--patience); the best is step {state.best_step}")
        return True

    def save(self, state) -> None:
        """The best weights so far to `best/` (the end-of-training safeguard)."""
        if self.keep_best and self.best_weights is not None:
            self.store.save_best(self.best_weights, state.best_step, state.best_metric)

    def epoch_end(self, model, state) -> None:
        """--average-epochs: add the weights at this epoch end (or the run's last step) to the average."""
        if self.epoch_average is not None:
            self.epoch_average.add(model.state_dict(), f"the weights of step {state.step}")
            state.epochs_averaged = self.epoch_average.count

    def checkpoint_files(self) -> dict:
        """{file name: tensors} a checkpoint keeps beside the weights: the --average-epochs sum so far."""
        return {AVERAGE_FILE: self.epoch_average.total} if self.epoch_average and self.epoch_average.count else {}

    def restore(self, model, folder=None, state=None) -> None:
        """After --resume from checkpoint `folder`: the best weights so far, and the epoch average's sum."""
        if self.keep_best:
            self.best_weights = self.store.load_best(model)
        if self.epoch_average is not None and state is not None and state.epochs_averaged:
            self.epoch_average.resume(self.store.load_extra(folder, AVERAGE_FILE), state.epochs_averaged,
                                      model.state_dict(), f"{folder / AVERAGE_FILE}")

    def finish(self, model, state) -> int:
        """Load the weights the run keeps into the model — the epoch average with --average-epochs, else the best
        when keeping the best; returns the step they come from (the last step, for an average)."""
        if self.epoch_average is not None and self.epoch_average.count:
            model.load_state_dict(self.epoch_average.average())
            return state.step
        if self.keep_best and self.best_weights is not None and state.best_step is not None:
            model.load_state_dict(self.best_weights)
            return state.best_step
        return state.step


__all__ = ["BestModelTracker"]
