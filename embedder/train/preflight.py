"""Whether a run can learn, checked before step 1: a run that cannot would exit 0 with a "fine-tuned" model that
learned nothing, or the wrong thing.

MNRL learns from the contrast between a query's positive and its negatives: scale · cos(q_i, c_j) over the
candidates j of query i, cross-entropy with label i. So each of these is refused (UserError, one line):
- no negatives at all: --batch-size 1 without a hard-negative column (the loss is 0 at every step);
- batches that hold a single pair each (the data repeats one text, so batches without duplicates have one row):
  the same, whatever the report's arithmetic on --batch-size says;
- a prompt that fills max_seq_length: every query (or passage) would be the prompt alone.
And one is repaired with a warning: a hard negative equal to its own positive (the loss would push the positive
away from its query) drops that row, counted, with the first rows named; a file where that leaves nothing is refused.
(A model whose weights do not cover its architecture is refused when it is loaded: embedder/model/auto_model.py.)
"""

from __future__ import annotations

from ..data.formats import PairDataset
from ..errors import UserError


def drop_negatives_equal_to_positives(pairs: PairDataset) -> tuple[PairDataset, str | None]:
    """`pairs` without the rows whose positive is also one of their negatives, and a warning line (None if none)."""
    if len(pairs.columns) <= 2:
        return pairs, None
    bad = [number for number, row in enumerate(pairs.rows, start=1) if row[1] in row[2:]]
    if not bad:
        return pairs, None
    if len(bad) == len(pairs.rows):
        raise UserError(f"{pairs.source}: every row has a negative equal to its positive; the negatives must be other "
                        "passages (mine them with python -m embedder mine)")
    kept = PairDataset(pairs.columns, [row for row in pairs.rows if row[1] not in row[2:]], pairs.source)
    shown = ", ".join(map(str, bad[:5])) + (", …" if len(bad) > 5 else "")
    return kept, (f"WARNING: {pairs.source}: {len(bad)} of {len(pairs.rows)} rows have a negative equal to their "
                  f"positive (rows {shown}); they were left out")


def check_can_learn(config, model, trainer) -> None:
    """UserError for a run that cannot learn (module docstring). config: the RunConfig; trainer: the Trainer, whose
    first epoch is planned."""
    settings = config.settings
    if config.negatives_per_query == 0:
        raise UserError(f"--batch-size {settings.batch_size}: no query has a negative to learn from (no other pair in "
                        "its batch, no hard-negative column); give --batch-size 2 or more, or a negative column")
    if not config.hard_negative_columns:
        rows = [len(rows) for _, rows in trainer.epoch_batches(0)]
        if rows and max(rows) < 2:
            raise UserError("--train: every batch holds a single pair (the data repeats the same texts, and batches "
                            "hold no text twice), so no query has a negative; add pairs of other passages")
    for flag, prompt in (("--query-prompt", config.query_prompt), ("--passage-prompt", config.passage_prompt)):
        tokens = model.tokenizer.prompt_length(prompt) if prompt else 0
        if prompt and tokens + 1 >= config.max_seq_length:
            raise UserError(f"{flag} {prompt[:40]!r}: it fills max_seq_length {config.max_seq_length} "
                            f"({tokens} tokens), so every text would be the prompt alone; shorten it or raise "
                            "--max-seq-length")


__all__ = ["check_can_learn", "drop_negatives_equal_to_positives"]
