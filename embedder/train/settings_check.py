"""Every training setting checked once, when a TrainConfig is made (config.py calls `validate_config` in its
`__post_init__`): each rule names the field, its command-line flag, the test and what a good value is; the first
value out of range, or two settings that contradict, is a UserError naming the flag. An optional dependency a
setting needs (--export's onnx, --report-to's tensorboard or trackio) is asked for here too, in one line naming the pip
command, before anything runs.
"""

from __future__ import annotations

import math

from ..data.formats import IRDataset, PairDataset
from ..errors import UserError, require
from ..model import onnx_export
from ..model.precision import PRECISIONS
from .losses import directions_problem


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# (field, flag, test, what a good value is): every setting is checked here once, when the config is made
_RULES = (
    ("batch_size", "--batch-size", lambda v: _is_int(v) and v >= 1, "a whole number of at least 1"),
    ("epochs", "--epochs", lambda v: _is_int(v) and v >= 1, "a whole number of at least 1"),
    ("max_steps", "--max-steps", lambda v: v is None or _is_int(v) and v >= 1, "a whole number of at least 1"),
    ("lr", "--lr", lambda v: _is_number(v) and v > 0, "a finite number above 0"),
    ("warmup_ratio", "--warmup-ratio", lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1)"),
    ("warmup_steps", "--warmup-steps", lambda v: v is None or _is_int(v) and v >= 0, "a whole number, 0 or more"),
    ("weight_decay", "--weight-decay", lambda v: _is_number(v) and v >= 0, "a finite number, 0 or more"),
    ("max_grad_norm", "--max-grad-norm", lambda v: _is_number(v) and v > 0, "a finite number above 0"),
    ("seed", "--seed", lambda v: _is_int(v) and 0 <= v < 2**63, "a whole number from 0 to 2**63 - 1"),
    ("scale", "--scale", lambda v: _is_number(v) and 0 < v <= 1e4, "a finite number above 0 (20 is usual)"),
    ("matryoshka_weights", "--matryoshka-weights",
     lambda v: v is None or len(v) > 0 and all(_is_number(w) and w > 0 for w in v), "finite numbers above 0"),
    ("matryoshka_dims", "--matryoshka-dims",
     lambda v: v is None or v == "auto" or len(v) > 0 and all(_is_int(d) and d >= 1 for d in v),
     "a comma list of whole numbers, auto or none"),
    ("precision", "--precision", lambda v: v in PRECISIONS, "one of " + ", ".join(PRECISIONS)),
    ("max_seq_length", "--max-seq-length", lambda v: v is None or _is_int(v) and v >= 2, "a whole number of at least 2"),
    ("eval_steps", "--eval-steps", lambda v: v is None or _is_int(v) and v >= 1, "a whole number of at least 1"),
    ("save_steps", "--save-steps", lambda v: v is None or _is_int(v) and v >= 1, "a whole number of at least 1"),
    ("save_total_limit", "--save-total-limit", lambda v: v is None or _is_int(v) and v >= 1,
     "a whole number of at least 1"),
    ("logging_steps", "logging_steps", lambda v: _is_int(v) and v >= 1, "a whole number of at least 1"),
    ("sampler", "--no-duplicates/--allow-duplicates", lambda v: v in ("no_duplicates", "random"),
     "no_duplicates or random"),
    ("max_skipped_share", "--max-skipped-share", lambda v: _is_number(v) and 0 <= v <= 1, "a share in [0, 1]"),
    ("max_bad_steps", "max_bad_steps", lambda v: _is_int(v) and v >= 1, "a whole number of at least 1"),
    ("eval_batch_size", "eval_batch_size", lambda v: _is_int(v) and v >= 1, "a whole number of at least 1"),
    ("mask_false_negatives", "--mask-false-negatives",
     lambda v: v is None or isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0,
     "a margin of 0 or more (0.1 is usual; inf masks nothing)"),
    ("mini_batch_size", "--mini-batch-size", lambda v: v is None or _is_int(v) and v >= 1,
     "a whole number of at least 1"),
    ("train", "--train", lambda v: isinstance(v, tuple) and len(v) > 0 and all(
        isinstance(t, str) and t or isinstance(t, (PairDataset, IRDataset)) for t in v), "one or more data files"),
    ("eval", "--eval", lambda v: isinstance(v, tuple) and all(isinstance(t, str) and t or isinstance(t, IRDataset)
                                                              for t in v), "IR data files, or none"),
    ("validation_split", "--validation-split", lambda v: _is_number(v) and 0 <= v < 1,
     "a share in [0, 1) (0 trains on every pair)"),
    ("eval_general", "--eval-general", lambda v: v is None or isinstance(v, tuple) and all(
        isinstance(t, str) and t or isinstance(t, IRDataset) for t in v), "IR data files, or none"),
    ("max_general_drop", "--max-general-drop", lambda v: _is_number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    ("merge", "--merge", lambda v: v in ("auto", "off") or _is_number(v) and 0 < v <= 1,
     "auto, off or a weight in (0, 1] (the fine-tuned share)"),
    ("output", "--output", lambda v: isinstance(v, str) and v != "", "a folder path"),
    ("soup", "--soup", lambda v: _is_int(v) and 1 <= v <= 32, "a number of members from 1 (one run) to 32"),
    ("patience", "--patience", lambda v: v is None or _is_int(v) and v >= 1,
     "a number of evaluations of at least 1 (or leave it out: never stop early)"),
    ("report_to", "--report-to", lambda v: v in ("none", "tensorboard", "trackio"), "none, tensorboard or trackio"),
    ("export", "--export", lambda v: isinstance(v, tuple) and all(k in onnx_export.EXPORTS for k in v),
     "a comma list of " + ", ".join(onnx_export.EXPORTS)),
)


def validate_config(config) -> None:
    """UserError naming the flag for the first setting that is out of range, or settings that contradict."""
    for name, flag, ok, good in _RULES:
        value = getattr(config, name)
        try:
            passed = bool(ok(value))
        except TypeError:
            passed = False
        if not passed:
            shown = tuple(getattr(v, "source", v) for v in value) if isinstance(value, tuple) else value
            raise UserError(f"{flag} {shown!r}: out of range, give {good}; see python train.py --help")
    onnx_export.require_extras(config.export)
    if config.report_to in ("tensorboard", "trackio"):
        require(config.report_to, extra=config.report_to)
    if config.validation_split and config.eval:
        raise UserError(f"--validation-split {config.validation_split:g} with --eval: validation is either held out "
                        "from --train or given; drop one of them")
    if problem := directions_problem(config.directions, config.partition_mode):
        raise UserError(f"--directions {config.directions!r} --partition-mode {config.partition_mode!r}: {problem}")
    if config.patience and not (config.eval or config.validation_split):
        raise UserError(f"--patience {config.patience}: there is no evaluation data to stop on (--eval none); give "
                        "--eval files or drop --patience")
    if config.select_metric and not (config.eval or config.validation_split):
        raise UserError(f"--select-metric {config.select_metric}: there is no evaluation data to select from "
                        "(--eval none); give --eval files or drop --select-metric")


__all__ = ["validate_config"]
