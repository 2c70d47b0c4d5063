"""Model soups: the uniform average of the weights of K fine-tuned runs of one base model (Wortsman et al., 2022,
"Model soups: averaging weights of multiple fine-tuned models improves accuracy without increasing inference
time"):

    θ_soup = (1/K) Σ_k θ_k        tensor by tensor, in float32, stored in the first state's dtype

Runs of one base from different seeds (data order, dropout) stay in one basin of the loss, so their average is a
model of its own, not a blur; benchmarks/soup_lever.py measures it.

`--soup K` (`train_members`): member 0 is the run itself (seed s); members m = 1…K-1 train after it in the same
process from the base weights with seed s + 1000·m (TrainConfig.soup_seeds), on the same tokenised pairs,
validated by the same evaluators (so the held-out slice is the same for all and stays clean for the soup), the
base model's metrics shared. Each
member keeps its own best step (and stops by --patience on its own); the model then holds the average of the
members' chosen weights, which the run evaluates, merges with the base (--merge auto) and saves. A member whose
best is the base model itself (step 0: no trained step beat it on validation) is left out of the average — it
would only pull the soup toward the base, which is the merge's choice, made on validation after; when every
member chose the base, the model is the base. One after another
rather than interleaved: on a CPU a step already uses every core, and one member's optimiser state is held at a
time.
"""

from __future__ import annotations

import dataclasses

import torch

from ..model.embedder import load
from .averaging import RunningAverage
from .checkpoints import RunStore
from .console import Progress
from .stop_signals import Interrupted
from .tracking import BestModelTracker
from .trainer import Trainer, TrainingStopped


def train_members(trainer: Trainer, echo, step_hook=None, stop=None) -> list[dict]:
    """After the run's own training (member 0, `trainer`): train members 1…K-1 as the module docstring says and
    leave the model holding the soup, which `trainer.finish_weights()` then keeps. Returns one record per member:
    seed, chosen step, steps trained, its best select metric. TrainingStopped when a member is interrupted (the
    run's own checkpoint stays; --resume trains the other members again)."""
    model, config, settings = trainer.model, trainer.config, trainer.settings
    chosen = trainer.finish_weights()
    soup = RunningAverage()  # the members' chosen weights, summed as they finish
    _add_member(soup, model, chosen, 1, echo)
    members = [{"seed": settings.seed, "step": chosen, "steps": trainer.state.step, "best": trainer.state.best_metric}]
    base = load(settings.base, device=model.device).state_dict()
    for m, seed in enumerate(settings.soup_seeds[1:], start=1):
        member_config = dataclasses.replace(config, settings=dataclasses.replace(settings, seed=seed))
        store = RunStore(settings.checkpoint_dir / f"soup-member-{m}", settings.save_total_limit, trainer.context)
        store.clear()
        tracker = BestModelTracker(trainer.tracker.evaluators, config.select_metric, settings.keep_best, store,
                                   save_best_to_disk=False, context=trainer.context, echo=echo,
                                   general_keys=trainer.tracker.general_keys,
                                   average_epochs=settings.average_epochs)
        model.load_state_dict(base)
        torch.manual_seed(seed + trainer.context.rank)
        member = Trainer(model, member_config, trainer.train_sets, tracker, store, echo, trainer.context)
        member.state.base_metrics = trainer.state.base_metrics
        echo(f"soup member {m + 1}/{settings.soup} (seed {seed})")
        if trainer.state.base_metrics and config.select_metric in trainer.state.base_metrics:  # the base's score
            tracker.track(model, trainer.state.base_metrics, member.state, 0.0)  # is the bar, as in member 0
        progress = Progress(member.total_steps, 0, config.global_batch, echo, enabled=trainer.context.is_main)
        try:
            member.run(progress, step_hook, stop)
        except Interrupted as err:
            raise TrainingStopped(f"interrupted ({err.signal_name}) in soup member {m + 1}; the run's own model is "
                                  f"in {settings.checkpoint_dir}: --resume trains the other members again") from None
        finally:
            progress.close()
        members.append({"seed": seed, "step": member.finish_weights(), "steps": member.state.step,
                        "best": member.state.best_metric})
        _add_member(soup, model, members[-1]["step"], m + 1, echo)
        for key in ("pairs", "step_seconds", "eval_seconds"):  # the run's cost includes every member's
            setattr(trainer.state, key, getattr(trainer.state, key) + getattr(member.state, key))
    averaged = soup.average() if soup.count else base
    model.load_state_dict(averaged)
    trainer.tracker.best_weights = averaged if trainer.tracker.keep_best else None  # what finish_weights() keeps
    trained = [str(i + 1) for i, r in enumerate(members) if r["step"] != 0]
    echo(f"soup of {len(members)}: members' chosen steps {', '.join(str(r['step']) for r in members)} (seeds "
         f"{', '.join(str(r['seed']) for r in members)}); the model is "
         + ("their average" if len(trained) == len(members) else
            f"the average of members {', '.join(trained)}" if trained else "the base model"))
    return members


def _add_member(soup: RunningAverage, model, chosen_step: int, number: int, echo) -> None:
    """Add the model's weights (member `number`'s chosen ones) to the soup, unless they are the base model's."""
    if chosen_step == 0:
        echo(f"  member {number} kept the base model (no trained step beat it): left out of the soup")
        return
    soup.add(model.state_dict(), f"member {number}")


def soup_table(members: list[dict], metric: str | None) -> str:
    """The card's table of the soup's members."""
    rows = [f"| {i + 1} | {r['seed']} | {r['steps']} | {r['step']} | "
            + (f"{r['best']:.4f}" if r["best"] is not None else "-") + " |" for i, r in enumerate(members)]
    return "\n".join([f"| Member | Seed | Steps trained | Chosen step | Best {metric or 'metric'} |",
                      "|:---:|:---:|:---:|:---:|:---:|", *rows])


__all__ = ["soup_table", "train_members"]
