"""Training groups for distillation: (query, a teacher positive, negatives) with the teacher's
score of every item, its kind (positive, hard, self-adversarial) and the positive's confidence.

Contrastive groups mix teacher-denoised hard negatives and this round's self-adversarial
negatives (hard ones fill in when a query has too few), then candidates drawn uniformly from the
rest, which only the distillation term sees; plain groups are the teacher's top document and
candidates drawn uniformly from the rest, the baseline on the same candidates.
Every draw depends only on (seed, round, query), so a resumed run sees the same groups."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from rankkit.distill.knowledge import HARD, SELF_ADVERSARIAL, QueryKnowledge
from rankkit.train.examples import Group

POSITIVE = "positive"
CANDIDATE = "candidate"  # a plain group's other items


@dataclass(frozen=True)
class DistillGroup(Group):
    teacher_scores: tuple[float, ...] = ()  # positive first, on the student's scale
    teacher_z: tuple[float, ...] = ()  # z-scores among the query's candidates
    source_ranks: tuple[float, ...] = ()  # rank in the candidate source / number of candidates
    kinds: tuple[str, ...] = ()
    confidence: float = 1.0


def _draw(rng: np.random.Generator, pool: Sequence[str], count: int) -> list[str]:
    if count <= 0 or not pool:
        return []
    return [pool[i] for i in rng.choice(len(pool), size=count, replace=len(pool) < count)]


def _group(
    k: QueryKnowledge, doc_texts: Mapping[str, str], positive: str, confidence: float, items: list[tuple[str, str]]
) -> DistillGroup:
    candidates = {c.docid: c for c in k.candidates}
    docids = [positive, *(d for d, _ in items)]
    return DistillGroup(
        k.qid,
        k.query,
        doc_texts[positive],
        positive,
        tuple(doc_texts[d] for d, _ in items),
        tuple(d for d, _ in items),
        teacher_scores=tuple(k.teacher[d] for d in docids),
        teacher_z=tuple(float(candidates[d].teacher_score) for d in docids),  # type: ignore[arg-type]
        source_ranks=tuple(candidates[d].rank / len(candidates) for d in docids),  # type: ignore[operator]
        kinds=(POSITIVE, *(kind for _, kind in items)),
        confidence=confidence,
    )


def contrastive_group(
    k: QueryKnowledge,
    doc_texts: Mapping[str, str],
    adversarial: Sequence[str],
    hard: int,
    self_adversarial: int,
    rng: np.random.Generator,
    candidates: int = 0,
) -> DistillGroup:
    """A positive drawn in proportion to its confidence, `self_adversarial` negatives from
    `adversarial` (topped up with hard ones when short), `hard` hard negatives, then `candidates`
    of the query's other candidates drawn uniformly (kind CANDIDATE: scored by the distillation
    term only, so a teacher positive among them is never pushed away)."""
    positives = sorted(k.positives)
    weights = np.array([k.positives[d] for d in positives])
    positive = positives[rng.choice(len(positives), p=weights / weights.sum())]
    taken = _draw(rng, adversarial, self_adversarial) if adversarial else []
    items = [(d, SELF_ADVERSARIAL) for d in taken]
    items += [(d, HARD) for d in _draw(rng, k.hard, hard + self_adversarial - len(taken))]
    chosen = {positive, *(d for d, _ in items)}
    rest = [c.docid for c in k.candidates if c.docid not in chosen]
    items += [(d, CANDIDATE) for d in _draw(rng, rest, candidates)]
    return _group(k, doc_texts, positive, k.positives[positive], items)


def plain_group(
    k: QueryKnowledge, doc_texts: Mapping[str, str], negatives: int, rng: np.random.Generator
) -> DistillGroup:
    """The teacher's top candidate first, then `negatives` other candidates drawn uniformly."""
    top = max(k.teacher, key=lambda d: k.teacher[d])
    rest = [c.docid for c in k.candidates if c.docid != top]
    return _group(k, doc_texts, top, 1.0, [(d, CANDIDATE) for d in _draw(rng, rest, negatives)])
