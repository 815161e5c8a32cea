"""Teacher scores: a teacher (a cross-encoder's `score`, or any function of (query, passage)
pairs) scores every candidate and each query's positives."""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np

from rankkit.data.qrels import Qrels
from rankkit.mining.candidates import Candidates

Teacher = Callable[[Sequence[tuple[str, str]]], np.ndarray]  # (query, passage) pairs -> scores


def add_teacher_scores(
    candidates: Candidates,
    queries: Mapping[str, str],
    positives: Qrels,
    doc_texts: Mapping[str, str],
    teacher: Teacher,
    min_grade: int = 1,
) -> dict[str, float]:
    """Set teacher_score on every candidate whose text is known; returns each query's best
    positive teacher score (for margin and SimANS on teacher scores)."""
    pairs, targets = [], []
    for qid, found in candidates.items():
        if qid not in queries:
            continue
        for candidate in found:
            if candidate.docid in doc_texts:
                pairs.append((queries[qid], doc_texts[candidate.docid]))
                targets.append(candidate)
        for docid, grade in positives.get(qid, {}).items():
            if grade >= min_grade and docid in doc_texts:
                pairs.append((queries[qid], doc_texts[docid]))
                targets.append((qid, docid))
    best: dict[str, float] = {}
    for target, score in zip(targets, teacher(pairs)):
        if isinstance(target, tuple):
            best[target[0]] = max(best.get(target[0], float("-inf")), float(score))
        else:
            target.teacher_score = float(score)
    return best
