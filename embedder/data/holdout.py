"""A validation set held out from the training pairs, by passage, for a run given no --eval.

Without validation data nothing can pick the best checkpoint or the merge weight, so a run on a user's pairs alone
would keep whatever the last step gave. `hold_out` takes passages (not pairs) out of training until at least
`share` of the pairs are out, so no passage is both trained on and used to validate (its questions would
otherwise be answered from memory):

    passages P, shuffled with the run's seed, each with every passage it shares a question with (the same
    question text asked of two passages, transitively: a group); groups are held out in the order of their first
    passage until Σ questions ≥ share · pairs (at least one group, never all of them), so no held-out question is
    also a training anchor
    validation queries  the held-out pairs' anchors (one per distinct text)
    validation corpus   the held-out passages, as an IR validation split of generated questions is built (the
                        test sets of ../shared/data are too); ranking against every training passage as well
                        would cost an encoding of the whole corpus at every evaluation (543 passages of 256
                        tokens on nutrition, more than its training steps)
    relevant            every held-out positive a query's text is paired with

A data set with one passage, or one whose remaining pairs would not fill a batch, keeps all its pairs; and nothing
is held out when fewer than MIN_QUESTIONS questions would be (under ~500 pairs at the default share). map@100 over
n questions has a standard error of about σ/√n with σ ≈ 0.3 per question (0.09 at n = 12, 0.04 at n = 60), while
checkpoints of one run differ by 0.01–0.02: on a dozen questions the choice of checkpoint and merge is noise, and
the tenth of the pairs it costs is a tenth of very little data (benchmarks/README.md, "Quality across domains"). Hard
negative columns stay with their rows; a held-out passage may still appear as another row's negative.
"""

from __future__ import annotations

import random
from pathlib import Path

from .formats import IRDataset, PairDataset

DEFAULT_SHARE = 0.1  # the share of pairs held out when no --eval is given (--validation-split)
MIN_QUESTIONS = 50  # fewer held-out questions than this cannot tell checkpoints apart (see the docstring)


def hold_out(datasets: list[PairDataset], share: float, seed: int, batch_size: int,
             min_questions: int = MIN_QUESTIONS) -> tuple[list[PairDataset], IRDataset | None]:
    """(the training sets with the held-out pairs removed, the validation IR set or None when nothing could be
    held out). The split depends only on the data, share and seed, so a resumed run makes the same one."""
    kept_sets, held_rows = [], []
    for data in datasets:
        by_passage: dict[str, list[int]] = {}
        for index, row in enumerate(data.rows):
            by_passage.setdefault(row[1], []).append(index)
        passages = list(by_passage)
        random.Random(seed).shuffle(passages)
        group = passage_groups(data.rows)
        held, count = set(), 0
        for passage in passages:
            if count >= share * len(data.rows):
                break
            if passage in held or len(held) + len(group[passage]) >= len(passages):  # never every passage
                continue
            held |= group[passage]
            count += sum(len(by_passage[p]) for p in group[passage])
        if not held or len(data.rows) - count < batch_size:
            kept_sets.append(data)
            continue
        kept_sets.append(PairDataset(data.columns, [row for row in data.rows if row[1] not in held], data.source,
                                     data.skipped, data.records))
        held_rows += [row for row in data.rows if row[1] in held]
    if len({row[0] for row in held_rows}) < min_questions:
        return datasets, None
    corpus_ids = {}
    for row in held_rows:
        corpus_ids.setdefault(row[1], f"p{len(corpus_ids)}")
    relevant_texts: dict[str, set[str]] = {}  # a held-out passage's every pair is held out, so these are all
    for row in held_rows:
        relevant_texts.setdefault(row[0], set()).add(row[1])
    query_ids = {}
    for row in held_rows:
        query_ids.setdefault(row[0], f"q{len(query_ids)}")
    sources = ", ".join(dict.fromkeys(Path(data.source).name or "data" for data in datasets))  # no machine paths
    return kept_sets, IRDataset(
        queries={qid: text for text, qid in query_ids.items()},
        corpus={pid: text for text, pid in corpus_ids.items()},
        relevant={qid: sorted(corpus_ids[p] for p in relevant_texts[text]) for text, qid in query_ids.items()},
        source=f"validation held out from {sources}")


def passage_groups(rows) -> dict[str, set[str]]:
    """Each passage's group: the passages joined to it by a shared question text, transitively (union-find)."""
    parent: dict[str, str] = {}

    def root(p: str) -> str:
        while parent.setdefault(p, p) != p:
            parent[p] = parent[parent[p]]
            p = parent[p]
        return p

    first_passage: dict[str, str] = {}
    for row in rows:
        other = first_passage.setdefault(row[0], row[1])
        parent[root(row[1])] = root(other)
    groups: dict[str, set[str]] = {}
    for passage in {row[1] for row in rows}:
        groups.setdefault(root(passage), set()).add(passage)
    return {p: groups[root(p)] for p in parent}


def summary(held: IRDataset, share: float) -> str:
    """The start-up line that says what was held out."""
    return (f"validation: {len(held.queries)} questions of {len(held.corpus)} passages held out from the training "
            f"pairs (--validation-split {share:g}, by passage); "
            "give --eval to use your own set, --validation-split 0 to train on every pair")
