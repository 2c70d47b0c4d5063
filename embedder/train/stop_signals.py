"""SIGINT (Ctrl-C) and SIGTERM (what Slurm, Kubernetes, systemd and spot-instance preemption send first), handled
alike for a whole run.

Inside `with StopSignals() as stop:` a signal raises `Interrupted` at once — Python's own behaviour for SIGINT,
now for SIGTERM too — so loading, evaluating and saving stop where they are (the atomic writers then put back what
they replaced). Inside `with stop.deferred():` (the training loop) a signal only sets `stop.requested`; the loop
reads it at the next step boundary, saves a checkpoint and stops. A second signal while deferred raises at once:
a user who presses Ctrl-C twice means it. Outside the main thread, where Python cannot install handlers,
`StopSignals` changes nothing and `requested` stays False.
"""

from __future__ import annotations

import contextlib
import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A stop signal arrived; a KeyboardInterrupt, so cleanup written for Ctrl-C runs for SIGTERM too."""

    def __init__(self, signal_name: str = "SIGINT"):
        super().__init__(signal_name)
        self.signal_name = signal_name


class StopSignals:
    def __init__(self):
        self.requested: str | None = None  # the signal's name once one arrived while deferred
        self._deferring = False
        self._previous = {}

    def _handle(self, signum, frame):
        name = signal.Signals(signum).name
        if self._deferring and self.requested is None:
            self.requested = name
            return
        raise Interrupted(name)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    @contextlib.contextmanager
    def deferred(self):
        """Signals only set `requested` inside (nestable)."""
        outer, self._deferring = self._deferring, True
        try:
            yield self
        finally:
            self._deferring = outer


__all__ = ["Interrupted", "StopSignals"]
