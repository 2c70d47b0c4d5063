"""What the training steps leave on the device between two reads: the loss of the finite steps and the skipped ones.

A step is *skipped* when its loss (or, without a GradScaler, its gradient norm) is not finite on some process:
the optimiser's fused kernel then leaves the weights as they were (embedder/train/optim.py `step_unless`). Every
step adds, on the device, without reading anything back:

    window_loss += loss · [finite]      window_steps += [finite]       finite += [finite]      skipped += [bad]
    window_grad_norm += ‖g‖ · [finite]  (the gradient's norm before clipping, as HF's Trainer logs grad_norm)
    in_a_row = (in_a_row + 1) · [bad]   stopped_at = this step, the first time in_a_row reaches max_bad_steps

`read` copies them to the host in one transfer — on a GPU the only synchronisation of the loop, done at logging,
evaluation and checkpoint steps and at the end (embedder/train/trainer.py). So a run of `max_bad_steps` skipped
steps is acted on at the next such step, up to `logging_steps` later; the step it was reached at is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Reading:
    window_loss: float  # the sum of the finite steps' losses since the last read that reset the window
    window_steps: int
    window_grad_norm: float  # the sum of the finite steps' gradient norms (before clipping) in the same window
    finite: int  # steps with a finite loss, since the run's start (resumed runs included)
    skipped: int  # skipped steps since this process started training
    in_a_row: int  # the steps skipped in a row up to now (0 when the last step was finite)
    stopped_at: int | None  # the step (0-based) at which max_bad_steps in a row were reached, if they were

    @property
    def mean_loss(self) -> float | None:
        return self.window_loss / self.window_steps if self.window_steps else None

    @property
    def mean_grad_norm(self) -> float | None:
        return self.window_grad_norm / self.window_steps if self.window_steps else None


class StepHealth:
    def __init__(self, device: torch.device, max_bad_steps: int, in_a_row: int = 0, finite: int = 0):
        self.max_bad_steps = max_bad_steps
        # one float64 vector (counts are exact to 2^53), so that `read` is one copy
        self.values = torch.tensor([0.0, 0.0, 0.0, finite, 0.0, in_a_row, -1.0], dtype=torch.float64).to(device)
        (self.window_loss, self.window_steps, self.window_grad_norm, self.finite, self.skipped, self.in_a_row,
         self.stopped_at) = self.values.unbind()

    def record(self, step: int, loss: torch.Tensor, bad: torch.Tensor, grad_norm: torch.Tensor | None = None) -> None:
        """After step `step` (0-based): its detached loss, whether it was skipped (a boolean device scalar) and its
        gradient norm before clipping."""
        bad_count = bad.to(torch.float64)
        good_count = 1 - bad_count
        self.window_loss.add_(torch.where(bad, 0.0, loss.detach().double()))
        if grad_norm is not None:
            self.window_grad_norm.add_(torch.where(bad, 0.0, grad_norm.detach().double()))
        self.window_steps.add_(good_count)
        self.finite.add_(good_count)
        self.skipped.add_(bad_count)
        self.in_a_row.add_(1).mul_(bad_count)
        reached = (self.in_a_row >= self.max_bad_steps) & (self.stopped_at < 0)
        self.stopped_at.copy_(torch.where(reached, float(step), self.stopped_at))

    def read(self, reset_window: bool = False) -> Reading:
        """Everything, in one copy to the host; reset_window: start a new logging window."""
        window_loss, window_steps, window_grad_norm, finite, skipped, in_a_row, stopped_at = self.values.tolist()
        if reset_window:
            self.values[:3].zero_()
        return Reading(window_loss, int(window_steps), window_grad_norm, int(finite), int(skipped), int(in_a_row),
                       None if stopped_at < 0 else int(stopped_at))


__all__ = ["Reading", "StepHealth"]
