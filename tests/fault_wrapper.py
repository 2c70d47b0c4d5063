"""Run a script after a named fault has been planted in this process: `python fault_wrapper.py FAULT script.py ARGS`.

Faults (each reproduces, at an exact phase, what a user's machine does at random):
- disk-full-at-save: writing the final model folder fails with ENOSPC, as on a full disk.
- disk-nearly-full: the file system reports 1 MiB free.
- sigint-in-final-eval / sigterm-in-final-eval: the signal arrives while the trained model is being evaluated.
- sigterm-in-base-eval: SIGTERM arrives while the base model is evaluated, before any step.
- nan-loss: every step's loss is NaN.
"""

import errno
import os
import runpy
import signal
import sys
from collections import namedtuple


def plant(fault: str) -> None:
    from embedder.model import st_format
    from embedder.train import trainer

    if fault == "disk-full-at-save":
        def full(folder, **kwargs):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        st_format.write_folder = full
    elif fault == "disk-nearly-full":
        import shutil
        usage = namedtuple("usage", "total used free")
        shutil.disk_usage = lambda path: usage(1 << 40, (1 << 40) - (1 << 20), 1 << 20)
    elif fault in ("sigint-in-final-eval", "sigterm-in-final-eval", "sigterm-in-base-eval"):
        number = signal.SIGINT if fault.startswith("sigint") else signal.SIGTERM
        real_evaluate = trainer.Trainer.evaluate

        def evaluate(self):
            final = self.state.step == self.total_steps and not self.model.training  # after the loop, not in it
            base = self.state.step == 0
            if (final if fault.endswith("final-eval") else base):
                os.kill(os.getpid(), number)
            return real_evaluate(self)
        trainer.Trainer.evaluate = evaluate
    elif fault == "nan-loss":
        real = trainer.loss_function

        def poisoned(*args, **kwargs):
            loss_of, weight = real(*args, **kwargs)
            return (lambda embeddings: loss_of(embeddings) * float("nan")), weight
        trainer.loss_function = poisoned
    else:
        raise SystemExit(f"unknown fault {fault}")


if __name__ == "__main__":
    fault, script, *args = sys.argv[1:]
    plant(fault)
    sys.argv = [script, *args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name="__main__")
