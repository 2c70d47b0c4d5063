"""Training progress a person can see, wherever the output goes.

- stderr is a terminal: a tqdm bar (step, loss, epoch); every other line of the run (the evaluations) is printed
  with tqdm.write, above the bar, never over it.
- stdout is not a terminal (a log file, a CI job, nohup): a plain line every `every_steps` steps or
  `every_seconds` seconds, whichever comes first, and at the last step:

      step 40/150 (epoch 1.33): loss 0.8123, 10.5 pairs/s, elapsed 1m20s, ETA 3m40s

  pairs/s = batch size x steps done in this process / seconds since its first step; ETA = the steps left at that
  rate. Both can hold at once (stdout to a file, stderr to a terminal).
"""

from __future__ import annotations

import sys
import time


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


class Progress:
    def __init__(self, total: int, initial: int, batch_size: int, echo=print, enabled: bool = True,
                 every_steps: int = 10, every_seconds: float = 30.0):
        self.total, self.initial, self.batch_size, self.echo = total, initial, batch_size, echo
        self.every_steps, self.every_seconds = every_steps, every_seconds
        self.bar = None
        self.lines = enabled and not sys.stdout.isatty()
        if enabled and sys.stderr.isatty():
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, initial=initial, desc="training", unit="step")
        self.started = self.last_line = time.monotonic()
        self.last_step = initial

    def write(self, *args, err: bool = False, **kwargs) -> None:
        """The run's other lines: above the bar when there is one."""
        if self.bar is not None:
            from tqdm.auto import tqdm
            tqdm.write(" ".join(str(a) for a in args), file=sys.stderr if err else sys.stdout)
        elif err:
            self.echo(*args, err=True, **kwargs)
        else:
            self.echo(*args, **kwargs)

    def update(self, step: int, loss: float, epoch: float) -> None:
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix(loss=f"{loss:.4f}", epoch=epoch)
        now = time.monotonic()
        due = step - self.last_step >= self.every_steps or now - self.last_line >= self.every_seconds \
            or step == self.total
        if self.lines and due:
            elapsed = now - self.started
            rate = (step - self.initial) / elapsed if elapsed > 0 else 0.0
            eta = (self.total - step) / rate if rate > 0 else 0.0
            self.echo(f"step {step}/{self.total} (epoch {epoch:.2f}): loss {loss:.4f}, "
                      f"{rate * self.batch_size:.1f} pairs/s, elapsed {_clock(elapsed)}, ETA {_clock(eta)}")
            self.last_step, self.last_line = step, now

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


__all__ = ["Progress"]
