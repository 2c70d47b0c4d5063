"""Run a script after a named fault has been planted in this process: `python fault_wrapper.py FAULT script.py ARGS`.

Faults (each reproduces, at an exact phase, what a user's machine does at random):
- disk-full-at-save: writing the final model folder fails with ENOSPC, as on a full disk.
- disk-nearly-full: the file system reports 1 MiB free.
- sigint-in-final-eval / sigterm-in-final-eval: the signal arrives while the trained model is being evaluated.
- sigterm-in-base-eval: SIGTERM arrives while the base model is evaluated, before any step.
- nan-loss: every step's loss is NaN.
- kill-before-settle / kill-before-swap / kill-after-swap: SIGKILL while the final model folder is written: its
  staging folder filled but not yet settled (modes, fsync), settled but not yet swapped in, swapped in but the
  replaced folder not yet removed.
- folder-at-output-in-final-eval: another process creates --output (with a file in it) while the trained model is
  evaluated.
- disk-full-at-second-checkpoint: safetensors fails with its own "No space left on device" error when the second
  checkpoint is written.
- sigint-in-last-step-eval: SIGINT while the last step's evaluation runs, inside the training loop.
- sigint-after-loop: SIGINT after the loop's last look at the signals, before the end-of-training checkpoint.
- wait-in-final-eval: the run, holding its output, waits in the final evaluation until a file GO appears in its
  working folder (at most 300 s).
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
    elif fault in ("kill-before-settle", "kill-before-swap", "kill-after-swap"):
        from embedder import files
        from embedder.model import st_format as formats

        def is_final(staging):  # the model folder (it has modules.json), not a checkpoint
            return (staging / formats.MODULES_FILE).is_file()
        if fault == "kill-before-settle":
            real_settle = files._settle_tree
            files._settle_tree = lambda folder: os.kill(os.getpid(), signal.SIGKILL) if is_final(folder) else \
                real_settle(folder)
        else:
            real_swap = files.swap_in

            def swap(staging, claim):
                final = is_final(staging)
                if final and fault == "kill-before-swap":
                    os.kill(os.getpid(), signal.SIGKILL)
                real_swap(staging, claim)
                if final:
                    os.kill(os.getpid(), signal.SIGKILL)
            files.swap_in = swap
    elif fault == "wait-in-final-eval":
        import time
        real_evaluate = trainer.Trainer.evaluate

        def evaluate(self):
            if self.state.step == self.total_steps and not self.model.training:
                deadline = time.time() + 300
                while not os.path.exists("GO") and time.time() < deadline:
                    time.sleep(0.05)
            return real_evaluate(self)
        trainer.Trainer.evaluate = evaluate
    elif fault == "folder-at-output-in-final-eval":
        real_evaluate = trainer.Trainer.evaluate

        def evaluate(self):
            if self.state.step == self.total_steps and not self.model.training:
                output = self.settings.output
                os.makedirs(output, exist_ok=True)
                with open(os.path.join(output, "notes.txt"), "w") as notes:
                    notes.write("mine")
            return real_evaluate(self)
        trainer.Trainer.evaluate = evaluate
    elif fault == "disk-full-at-second-checkpoint":
        import safetensors.torch
        from safetensors import SafetensorError
        real_save, calls = safetensors.torch.save_file, []

        def save_file(tensors, path, metadata=None):
            if os.path.basename(os.path.dirname(path)).startswith(".step-"):
                calls.append(path)
                if len(calls) == 2:
                    raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull, "
                                          "message: \"No space left on device\" })")
            return real_save(tensors, path, metadata=metadata)
        safetensors.torch.save_file = save_file
    elif fault in ("sigint-in-last-step-eval", "sigint-after-loop"):
        if fault == "sigint-in-last-step-eval":
            real_evaluate = trainer.Trainer.evaluate

            def evaluate(self):
                if self.state.step == self.total_steps and self.model.training:
                    os.kill(os.getpid(), signal.SIGINT)
                return real_evaluate(self)
            trainer.Trainer.evaluate = evaluate
        else:
            real_run = trainer.Trainer._run

            def run(self, *args):
                real_run(self, *args)
                os.kill(os.getpid(), signal.SIGINT)
            trainer.Trainer._run = run
    else:
        raise SystemExit(f"unknown fault {fault}")


if __name__ == "__main__":
    fault, script, *args = sys.argv[1:]
    plant(fault)
    sys.argv = [script, *args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name="__main__")
