"""Evaluation during training and the best model so far.

At each evaluation every IR set is scored on rank 0 (the other processes wait); the row goes to the training log
and, when the selection metric improves on the best so far (strictly greater), this step becomes the best:
its weights are kept in memory with --keep-best (the default) and written to `best/` when the run saves
checkpoints. At the end `finish` loads the best weights into the model, so the saved model is the best one — ST's
`load_best_model_at_end` with `metric_for_best_model`.
"""

from __future__ import annotations

from . import checkpoints, distributed
from .evaluation import InformationRetrievalEvaluator
from .run_store import RunStore


class BestModelTracker:
    def __init__(self, evaluators: list[InformationRetrievalEvaluator], select_metric: str | None, keep_best: bool,
                 store: RunStore, save_best_to_disk: bool, context: distributed.Context, echo):
        self.evaluators, self.select_metric, self.keep_best = evaluators, select_metric, keep_best
        self.store, self.save_best_to_disk, self.context, self.echo = store, save_best_to_disk, context, echo
        self.best_weights: dict | None = None

    def evaluate(self, model) -> dict[str, float]:
        """Metrics on every eval set (rank 0 only; the other processes wait); the model is left in train mode."""
        metrics = {}
        if self.context.is_main:
            for evaluator in self.evaluators:
                metrics.update(evaluator(model))
        distributed.barrier(self.context)
        model.train()
        return metrics

    def track(self, model, metrics: dict, state, epoch: float) -> None:
        """Log an evaluation of `state.step`; make it the best when the selection metric improved."""
        self.store.log({"step": state.step, "epoch": epoch, **metrics})
        value = metrics.get(self.select_metric) if self.select_metric else None
        if value is None:
            return
        self.echo(f"  step {state.step} (epoch {epoch}): {self.select_metric} = {value:.4f}")
        if state.best_metric is None or value > state.best_metric:
            state.best_metric, state.best_step = value, state.step
            if self.keep_best:
                self.best_weights = checkpoints.model_state(model)
                if self.save_best_to_disk:
                    self.store.save_best(self.best_weights, state.step, value)

    def save(self, state) -> None:
        """The best weights so far to `best/` (the end-of-training safeguard)."""
        if self.keep_best and self.best_weights is not None:
            self.store.save_best(self.best_weights, state.best_step, state.best_metric)

    def restore(self, model) -> None:
        if self.keep_best:
            self.best_weights = self.store.load_best(model)

    def finish(self, model, state) -> int:
        """Load the best weights into the model when keeping the best; returns the step they come from."""
        if self.keep_best and self.best_weights is not None and state.best_step is not None:
            model.load_state_dict(self.best_weights)
            return state.best_step
        return state.step


__all__ = ["BestModelTracker"]
