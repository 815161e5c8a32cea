"""Training groups from a MinedSet: (query, one positive, n negatives), sampled reproducibly.

The order of queries in an epoch and the negatives drawn for each depend only on (seed, epoch,
query position), so a run resumed from a checkpoint sees exactly the batches it would have seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from rankkit.errors import RankkitError
from rankkit.mining.minedset import MinedSet


@dataclass(frozen=True)
class Group:
    qid: str
    query: str
    positive: str  # text
    positive_id: str
    negatives: tuple[str, ...]  # texts
    negative_ids: tuple[str, ...]


def check_texts(mined: MinedSet, doc_texts: Mapping[str, str]) -> None:
    """Every docid of the MinedSet must have text in the corpus."""
    missing = {d for q in mined.queries for d in (*q.positives, *(n.docid for n in q.negatives)) if d not in doc_texts}
    if missing:
        example = ", ".join(sorted(missing)[:3])
        raise RankkitError(
            f"{len(missing)} docids of the MinedSet are not in the corpus (e.g. {example}). "
            "Fix: train with the corpus the MinedSet was mined from"
        )


def epoch_groups(mined: MinedSet, doc_texts: Mapping[str, str], negatives: int, seed: int, epoch: int) -> list[Group]:
    """One epoch's groups in a seeded order; queries with no negatives are left out."""
    usable = [q for q in mined.queries if q.negatives]
    order = np.random.default_rng([seed, epoch]).permutation(len(usable))
    groups = []
    for position in order:
        q = usable[position]
        rng = np.random.default_rng([seed, epoch, int(position)])
        best = max(q.positives.values())
        top_positives = sorted(d for d, g in q.positives.items() if g == best)
        positive = top_positives[rng.integers(len(top_positives))]
        picks = rng.choice(len(q.negatives), size=negatives, replace=len(q.negatives) < negatives)
        chosen = [q.negatives[i].docid for i in picks]
        groups.append(
            Group(q.qid, q.query, doc_texts[positive], positive, tuple(doc_texts[d] for d in chosen), tuple(chosen))
        )
    return groups


def batches(groups: list[Group], batch_size: int) -> list[list[Group]]:
    return [groups[i : i + batch_size] for i in range(0, len(groups), batch_size)]
