"""Training groups from a MinedSet: (query, one positive, n negatives), sampled reproducibly.

The order of queries in an epoch and the negatives drawn for each depend only on (seed, epoch,
query position), so a run resumed from a checkpoint sees exactly the batches it would have seen.
"""

from __future__ import annotations

import sys
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


def check_mined(mined: MinedSet, doc_texts: Mapping[str, str], negatives: int) -> None:
    """Every docid of the MinedSet must have text in the corpus; queries that hold fewer than
    `negatives` negatives (but some) are said, since their groups draw negatives with replacement."""
    missing = {d for q in mined.queries for d in (*q.positives, *(n.docid for n in q.negatives)) if d not in doc_texts}
    if missing:
        example = ", ".join(sorted(missing)[:3])
        raise RankkitError(
            f"{len(missing)} docids of the MinedSet are not in the corpus (e.g. {example}). "
            "Fix: train with the corpus the MinedSet was mined from"
        )
    short = [len(q.negatives) for q in mined.queries if 0 < len(q.negatives) < negatives]
    if short:
        usable = sum(1 for q in mined.queries if q.negatives)
        print(
            f"warning: {len(short)} of {usable} queries of the MinedSet hold fewer than --negatives {negatives} "
            f"negatives (fewest {min(short)}): their groups repeat negatives (drawn with replacement). "
            f"Fix: pass --negatives {min(short)}, or mine more per query (rankkit mine --count)",
            file=sys.stderr,
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
