"""A training run's configuration: the settings as given (`TrainConfig`) and, once the model and the data are
loaded, the one resolved configuration (`RunConfig`: those settings and everything derived from them, made by
`resolve`).

`TrainConfig` holds the seeds' (ST Trainer) defaults; `validate_config` (settings_check.py) runs in
`__post_init__`, so no config with an impossible value (a non-finite or negative number, a seed past 63 bits, an
unknown precision, a metric to select with nothing to evaluate) can exist: the first bad field is a UserError naming
its command-line flag.

`resolve(config, model, data, context)` derives, given the loaded model, the data and the torchrun context:

    precision      fp32 / bf16 / fp16 and why (embedder/model/precision.py)
    dims, weights  the Matryoshka dims, sorted descending, one weight each (`auto`: the seeds' dims for a model
                   768 wide or more, plain MNRL for narrower ones: default_dims)
    eval_dims      None (full size) then every smaller Matryoshka dim
    select_metric  the metric that picks the best checkpoint (default: cosine_map@100 of the first eval set)
    batches        per-process batch b, processes P, global batch G = b·P; negatives per query (G − 1) in-batch
                   + G·n hard when gathered across processes, else (b − 1) + b·n
    max_seq_length, the training data's content hash

A RunConfig is frozen. The start-up report prints it, every checkpoint keeps its `resume_key` (a resumed run must
have the same), the model folder's train_config.json holds it, and everything downstream reads it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..data.formats import MAX_SKIPPED_SHARE, IRDataset, PairDataset, content_digest
from ..data.holdout import DEFAULT_SHARE
from ..data.specs import is_default_spec
from ..errors import UserError
from ..eval.ir import prefixed_metric_names
from ..model import precision as precisions
from ..model.precision import PRECISIONS
from .losses import ONE_WAY, validate_dims
from .settings_check import validate_config


@dataclass(frozen=True)
class TrainConfig:
    """Every training setting; defaults are the seeds' (ST Trainer) values unless said otherwise."""
    base: str = "all-mpnet-base-v2"
    train: tuple[str | PairDataset | IRDataset, ...] = ("stdlib:train",)  # files, the embedded data, or in memory
    eval: tuple[str | IRDataset, ...] | None = None  # None: the embedded val split when training on the embedded
    #                                                 data, else no evaluation
    validation_split: float | None = None  # share of the pairs held out by passage to validate on (data/holdout.py);
    #                                        None: 0.1 when training on the user's data with no --eval given, else 0
    eval_general: tuple[str | IRDataset, ...] | None = None  # forgetting check; None: see general_sets
    max_general_drop: float = 0.02  # absolute cosine_map@100 on the general sets: a larger drop is warned about
    merge: str | float = "auto"  # merge with the base after training: auto (searched), off, or a weight in (0, 1]
    output: str | None = None  # None: output/<base's name>-finetuned
    export: tuple[str, ...] = ()  # onnx, int8, openvino: written into the output too (embedder/model/onnx_export.py)
    report_to: str = "none"  # tensorboard (events under <output>/runs) or trackio (train/report_to.py)
    epochs: int = 5  # seeds: num_train_epochs 5 (mpnet, bge) / 1-3 (MiniLM)
    max_steps: int | None = None  # stops early when reached
    batch_size: int = 20  # seeds: per_device_train_batch_size 20
    lr: float = 5e-5  # seeds: learning_rate
    warmup_ratio: float = 0.0
    warmup_steps: int | None = None
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 42
    soup: int = 1  # members averaged into the model, with `soup_seeds` (train/soup.py); 1: one run
    patience: int | None = None  # stop after this many evaluations without a better select metric; None: never
    average_epochs: bool = False  # keep the average of the epoch ends' weights, not the best checkpoint (tracking.py)
    scale: float = 20.0  # MNRL scale = 1 / temperature
    matryoshka_dims: tuple[int, ...] | str | None = "auto"  # auto: the seeds' (default_dims); None: plain MNRL
    matryoshka_weights: tuple[float, ...] | None = None  # one per dim, same order; None: all 1 (ST's default)
    precision: str = "auto"  # auto: bf16 (or fp16) autocast on CUDA and on CPUs with native bf16, else fp32
    max_seq_length: int | None = None  # None: the model's own
    eval_steps: int | None = 50  # plus every epoch end
    save_steps: int | None = None
    save_total_limit: int | None = None
    logging_steps: int = 10
    sampler: str = "no_duplicates"  # or "random" (ST's default); see README for the measurement
    mask_duplicates: bool = False  # also drop in-batch false negatives inside the loss
    mask_false_negatives: float | None = None  # drop negatives more similar than the positive + this margin
    directions: tuple[str, ...] = ONE_WAY  # loss terms (losses.py; ST 6.3's MNRL `directions`)
    partition_mode: str = "joint"  # one softmax over the directions, or one per direction, averaged
    query_prompt: str | None = None  # None: the base model's saved "query" prompt (if any); "": none
    passage_prompt: str | None = None  # None: the base's "document" (or "passage", "corpus") prompt; "": none
    select_metric: str | None = None  # default: cosine_map@100 of the first eval set
    keep_best: bool = True
    resume: bool = False
    overwrite: bool = False
    max_bad_steps: int = 5
    max_skipped_share: float = MAX_SKIPPED_SHARE  # a data file with more unusable records (empty texts) is refused
    eval_batch_size: int = 32
    device: str | None = None
    mini_batch_size: int | None = None  # GradCache: activation memory of this many texts per forward
    gather_across_devices: bool = True  # under torchrun: every device's positives are negatives for all

    def __post_init__(self):
        """The defaults that depend on other settings, derived here once: the output folder and the eval sets."""
        if self.output is None and isinstance(self.base, str):
            object.__setattr__(self, "output", default_output(self.base))
        if self.validation_split is None:
            object.__setattr__(self, "validation_split", default_validation_split(self.train, self.eval))
        if self.eval is None:
            object.__setattr__(self, "eval", default_eval(self.train))
        validate_config(self)

    def to_json(self) -> dict:
        """The settings as JSON values; in-memory data sets are named by their source."""
        record = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("train", "eval", "eval_general"):
            if record[name] is not None:
                record[name] = [spec if isinstance(spec, str) else spec.source for spec in record[name]]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in record.items()}

    def non_defaults(self) -> dict:
        """The settings that differ from the defaults (the derived output folder excepted), as the seeds' cards."""
        defaults = {f.name: list(f.default) if isinstance(f.default, tuple) else f.default for f in fields(self)}
        defaults["output"] = default_output(self.base) if isinstance(self.base, str) else None
        defaults["eval"] = list(default_eval(self.train))
        defaults["validation_split"] = default_validation_split(self.train, self.eval or None)
        return {k: v for k, v in self.to_json().items() if v != defaults[k]}

    @property
    def general_sets(self) -> tuple:
        """The forgetting check's IR sets: --eval-general as given; by default the embedded data set's test split
        (a domain other than the user's documents) when there is evaluation at all and the training data is not
        the embedded data set itself."""
        if self.eval_general is not None:
            return self.eval_general
        if not (self.eval or self.validation_split) or \
                any(isinstance(spec, str) and is_default_spec(spec) for spec in self.train):
            return ()
        return ("stdlib:test",)

    @property
    def soup_seeds(self) -> tuple[int, ...]:
        """The seed of each member of --soup: seed + 1000·m for member m (member 0 is the run itself)."""
        return tuple(self.seed + SOUP_SEED_STRIDE * m for m in range(self.soup))

    @property
    def checkpoint_dir(self) -> Path:
        out = Path(self.output)
        return out.parent / f"{out.name}.checkpoints"


def default_output(base: str) -> str:
    return f"output/{Path(base.rstrip('/')).name}-finetuned"


def default_eval(train) -> tuple[str, ...]:
    """The embedded data set's val split when the training data is the embedded data set; else none (a user's
    documents have no validation split we could know of)."""
    is_default = isinstance(train, tuple) and bool(train) and all(is_default_spec(spec) for spec in train)
    return ("stdlib:val",) if is_default else ()


def default_validation_split(train, eval) -> float:
    """--validation-split when not given: DEFAULT_SHARE of the user's pairs held out when no --eval is given (a
    run with nothing to validate on could not choose its best checkpoint or its merge); 0 with --eval (`none`
    included) or on the embedded data set, which has its own val split."""
    return DEFAULT_SHARE if eval is None and not default_eval(train) else 0.0


SEED_DIMS = (768, 512, 256, 128, 64)
SOUP_SEED_STRIDE = 1000
DEFAULT_SELECT = "cosine_map@100"


def default_dims(width: int) -> tuple[int, ...] | None:
    """`--matryoshka-dims auto`: the seeds' nested dims (768,512,256,128,64, from the width down) for a model at
    least 768 wide, as the all-mpnet-base-v2 and bge-base seeds trained; plain MNRL (None) for narrower ones, as the
    all-MiniLM-L6-v2 seeds did. On aipolicy's val split (all-MiniLM-L6-v2, 2 seeds) cosine_map@100 was 0.823 plain
    against 0.813 with Matryoshka over 384,256,128,64 (benchmarks/README.md, "Quality across domains")."""
    return (width,) + tuple(d for d in SEED_DIMS if d < width) if width >= SEED_DIMS[0] else None


@dataclass(frozen=True)
class RunConfig:
    """A run's one resolved configuration: the settings as given and what they come to for this model, data and
    torchrun context (made by `resolve`, once; frozen). Everything downstream of the start takes this alone."""
    settings: TrainConfig  # as given (validated when made)
    precision: str  # what runs: fp32, bf16 or fp16
    precision_reason: str
    precision_warning: str  # "" unless the precision asked for is emulated on this CPU
    dims: tuple[int, ...] | None  # Matryoshka dims, descending; None: plain MNRL
    weights: tuple[float, ...] | None
    eval_dims: tuple[int | None, ...]
    eval_names: tuple[str, ...]  # the metric prefix of each eval set ("" for a single set)
    select_metric: str | None
    world_size: int
    global_batch: int  # settings.batch_size (per process) x world_size
    gather_across_devices: bool
    negatives_per_query: int
    hard_negative_columns: int
    max_seq_length: int
    training_data: str  # sha256 of every training text, in order (16 hex digits)
    query_prompt: str = ""  # the prompts training and evaluation use (see `resolve_prompts`)
    passage_prompt: str = ""
    prompt_source: str = ""  # where they come from, for the start-up report

    def resume_key(self) -> dict:
        """What decides the batches, the loss and the updates: a resumed run must match all of it. Keys are the
        flags (a checkpoint written before a key existed matches any value of it)."""
        s = self.settings
        return {"--batch-size": s.batch_size, "--epochs": s.epochs, "--seed": s.seed,
                "--no-duplicates/--allow-duplicates": s.sampler,
                "--matryoshka-dims": list(self.dims) if self.dims else None,
                "--matryoshka-weights": list(self.weights) if self.weights else None,
                "--scale": s.scale, "--mask-duplicates": s.mask_duplicates,
                "--mask-false-negatives": s.mask_false_negatives, "--directions": list(s.directions),
                "--partition-mode": s.partition_mode, "--lr": s.lr, "--warmup-ratio": s.warmup_ratio,
                "--warmup-steps": s.warmup_steps, "--weight-decay": s.weight_decay,
                "--max-grad-norm": s.max_grad_norm, "--average-epochs": s.average_epochs,
                "world size (torchrun)": self.world_size,
                "--max-seq-length": self.max_seq_length, "training data": self.training_data}

    def derived_json(self) -> dict:
        """The derived values (everything but `settings`), as JSON values."""
        return {k: v for k, v in asdict(self).items() if k != "settings"}


def resolve(config: TrainConfig, model, train_pairs, eval_sets, context) -> RunConfig:
    """The run's resolved configuration (see the module docstring); UserError naming the flag for a setting the
    model or the data cannot take. eval_sets: (spec name, IRDataset) pairs."""
    width = model.embedding_dimension
    dims = default_dims(width) if config.matryoshka_dims == "auto" else config.matryoshka_dims
    try:
        if config.matryoshka_weights and not dims:
            raise ValueError("weights were given but Matryoshka is off (--matryoshka-dims none, or auto on a model "
                             "narrower than 768); give the dims too")
        dims, weights = (tuple(t) for t in validate_dims(dims, width, config.matryoshka_weights)) if dims else \
            (None, None)
    except ValueError as err:
        raise UserError(f"--matryoshka-dims/--matryoshka-weights: {err}") from None

    max_seq_length = model.max_seq_length
    if config.max_seq_length:
        positions = getattr(getattr(model.backbone, "config", None), "usable_positions", None)  # None: AutoModel
        if positions is not None and config.max_seq_length > positions:
            raise UserError(f"--max-seq-length {config.max_seq_length}: {config.base} has only {positions} positions; "
                            f"give at most {positions}")
        max_seq_length = config.max_seq_length

    eval_dims = (None, *[d for d in (dims or ()) if d != width])
    eval_names = tuple(name if len(eval_sets) > 1 else "" for name, _ in eval_sets)
    metric_keys = [key for name in eval_names for key in prefixed_metric_names(name, eval_dims)]
    select_metric = config.select_metric or (next((k for k in metric_keys if k.endswith(DEFAULT_SELECT)), None))
    if select_metric and select_metric not in metric_keys:
        raise UserError(f"--select-metric {select_metric!r} is not a metric of this run; valid names include "
                        f"{', '.join(metric_keys[:15])}")

    query_prompt, passage_prompt, prompt_source = resolve_prompts(config, model.prompts)
    precision, reason, warning = precisions.choose_precision(config.precision, model.device)
    hard = len(train_pairs[0].columns) - 2  # every file has the same columns (checked when the data is read)
    global_batch = config.batch_size * context.world_size
    gathered = context.enabled and config.gather_across_devices
    seen = global_batch if gathered else config.batch_size  # candidates each anchor is scored against, per column
    return RunConfig(
        settings=config, precision=precision, precision_reason=reason, precision_warning=warning, dims=dims,
        weights=weights, eval_dims=eval_dims, eval_names=eval_names, select_metric=select_metric,
        world_size=context.world_size, global_batch=global_batch, gather_across_devices=gathered,
        negatives_per_query=(seen - 1) + seen * hard, hard_negative_columns=hard, max_seq_length=max_seq_length,
        training_data=content_digest(train_pairs), query_prompt=query_prompt, passage_prompt=passage_prompt,
        prompt_source=prompt_source)


PASSAGE_PROMPT_NAMES = ("document", "passage", "corpus")  # ST's encode_document looks for these, in this order


def resolve_prompts(config: TrainConfig, base_prompts: dict) -> tuple[str, str, str]:
    """(query prompt, passage prompt, where they come from): a flag as given ("" turns a prompt off), else the base
    model's saved prompt — the anchor column gets its "query" prompt, the others its document prompt — as the
    model will apply them with ST's encode_query / encode_document after training."""
    base_query = base_prompts.get("query", "")
    base_passage = next((base_prompts[n] for n in PASSAGE_PROMPT_NAMES if n in base_prompts), "")
    query = base_query if config.query_prompt is None else config.query_prompt
    passage = base_passage if config.passage_prompt is None else config.passage_prompt
    if (query, passage) == (base_query, base_passage):
        source = "the base model's (config_sentence_transformers.json); --query-prompt '' --passage-prompt '' turn " \
                 "them off" if query or passage else ""
    else:
        source = "given" + (f"; the base model's are query {base_query!r}, passage {base_passage!r}"
                            if base_query or base_passage else "")
    return query, passage, source


def saved_prompts(base: dict, query: str, passage: str) -> dict:
    """The prompts the trained model keeps: every named prompt of the base, its query and document prompts
    replaced by those training used (or dropped when training used none, so encode_query adds nothing it never
    saw)."""
    prompts = dict(base)
    for names, used in ((("query",), query), (PASSAGE_PROMPT_NAMES, passage)):
        key = next((n for n in names if n in prompts), names[0])
        for name in names:
            prompts.pop(name, None)
        if used:
            prompts[key] = used
    return prompts


__all__ = ["PRECISIONS", "RunConfig", "TrainConfig", "default_dims", "resolve", "resolve_prompts", "saved_prompts",
           "validate_config"]
