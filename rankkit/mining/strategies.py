"""Mining strategies: small, seeded steps composed in a list. Each takes one query's candidates
(best first) and its context, and returns the candidates it keeps.

Scores come from the source retriever ('score') or a teacher cross-encoder ('teacher_score').
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from rankkit.errors import RankkitError
from rankkit.mining.candidates import Candidate

ScoreField = Literal["score", "teacher_score"]


@dataclass(frozen=True)
class QueryContext:
    """What a strategy may know about the query beyond its candidates."""

    qid: str
    positive_score: float | None  # best labeled positive's source score (None: not scored)
    positive_teacher_score: float | None
    rng: np.random.Generator

    def positive(self, field: ScoreField) -> float | None:
        return self.positive_score if field == "score" else self.positive_teacher_score


class Strategy(Protocol):
    name: str

    def __call__(self, candidates: list[Candidate], ctx: QueryContext) -> list[Candidate]: ...


def _value(candidate: Candidate, field: ScoreField) -> float:
    value = getattr(candidate, field)
    if value is None:
        raise RankkitError(
            f"candidate {candidate.docid} has no {field}. Fix: score candidates with a teacher "
            "(--teacher MODEL) before teacher-based strategies"
        )
    return value


@dataclass(frozen=True)
class RankWindow:
    """Keep candidates ranked in [min_rank, max_rank] by their source (e.g. 10..200)."""

    min_rank: int = 1
    max_rank: int = 200
    name: str = "window"

    def __call__(self, candidates: list[Candidate], ctx: QueryContext) -> list[Candidate]:
        return [c for c in candidates if self.min_rank <= c.rank <= self.max_rank]


@dataclass(frozen=True)
class TopN:
    """Keep the n best-ranked candidates (hard negatives)."""

    n: int
    name: str = "top"

    def __call__(self, candidates: list[Candidate], ctx: QueryContext) -> list[Candidate]:
        return sorted(candidates, key=lambda c: c.rank)[: self.n]


@dataclass(frozen=True)
class RandomN:
    """Keep n candidates drawn uniformly without replacement (seeded), in rank order."""

    n: int
    name: str = "random"

    def __call__(self, candidates: list[Candidate], ctx: QueryContext) -> list[Candidate]:
        if len(candidates) <= self.n:
            return list(candidates)
        chosen = set(ctx.rng.choice(len(candidates), size=self.n, replace=False).tolist())
        return [c for i, c in enumerate(candidates) if i in chosen]


@dataclass(frozen=True)
class MarginFilter:
    """Drop candidates that score too close to (or above) the positive: likely false negatives.

    Keep a candidate when score <= positive - margin (absolute), or, with relative=True,
    score <= positive - margin * |positive|, which stays correct when scores are negative
    (a plain positive * (1 - margin) would raise the bar for negative scores instead of lowering it).
    Queries whose positive has no score keep their candidates.
    """

    margin: float = 0.0
    relative: bool = False
    field: ScoreField = "score"
    name: str = "margin"

    def __call__(self, candidates: list[Candidate], ctx: QueryContext) -> list[Candidate]:
        positive = ctx.positive(self.field)
        if positive is None:
            return list(candidates)
        limit = positive - self.margin * abs(positive) if self.relative else positive - self.margin
        return [c for c in candidates if _value(c, self.field) <= limit]


@dataclass(frozen=True)
class TeacherDenoise:
    """RocketQA's denoising (Qu et al., NAACL 2021): drop candidates a cross-encoder teacher
    scores at or above `threshold` (likely relevant, just unlabeled)."""

    threshold: float
    name: str = "denoise"

    def __call__(self, candidates: list[Candidate], ctx: QueryContext) -> list[Candidate]:
        return [c for c in candidates if _value(c, "teacher_score") < self.threshold]


@dataclass(frozen=True)
class SimANS:
    """Ambiguous negatives (SimANS, Zhou et al., EMNLP 2022): sample n candidates with
    p ~ exp(-a (s_neg - s_pos - b)^2), favouring those scored near the positive, neither far
    below (too easy) nor above it (likely false negatives). Seeded."""

    n: int
    a: float = 1.0
    b: float = 0.0
    field: ScoreField = "score"
    name: str = "simans"

    def weights(self, scores: np.ndarray, positive: float) -> np.ndarray:
        logits = -self.a * (scores - positive - self.b) ** 2
        weights = np.exp(logits - logits.max())
        return weights / weights.sum()

    def __call__(self, candidates: list[Candidate], ctx: QueryContext) -> list[Candidate]:
        positive = ctx.positive(self.field)
        if positive is None or len(candidates) <= self.n:
            return list(candidates)
        scores = np.array([_value(c, self.field) for c in candidates])
        if not (np.isfinite(scores).all() and math.isfinite(positive)):
            raise RankkitError(
                f"query {ctx.qid}: SimANS needs finite {self.field}s, but some are nan or inf. "
                "Fix: mine from a run with finite scores, or use --sampling top or random"
            )
        chosen = set(
            ctx.rng.choice(len(candidates), size=self.n, replace=False, p=self.weights(scores, positive)).tolist()
        )
        return [c for i, c in enumerate(candidates) if i in chosen]


@dataclass(frozen=True)
class AdaptiveThreshold:
    """ATSS-style per-query threshold: drop candidates whose score is above mean + k * std of
    this query's candidate scores (the outliers a teacher thinks relevant)."""

    k: float = 1.0
    field: ScoreField = "teacher_score"
    name: str = "adaptive"

    def __call__(self, candidates: list[Candidate], ctx: QueryContext) -> list[Candidate]:
        if len(candidates) < 2:
            return list(candidates)
        scores = np.array([_value(c, self.field) for c in candidates])
        limit = scores.mean() + self.k * scores.std()
        return [c for c, s in zip(candidates, scores) if s <= limit or math.isclose(s, limit)]


@dataclass(frozen=True)
class SelfAdversarial:
    """Keep candidates that an earlier checkpoint of the model being trained ranks in its top
    `depth` for the query (its run, from `rankkit search` with that checkpoint's index)."""

    top_docids: dict[str, frozenset[str]]
    name: str = "self-adversarial"

    @classmethod
    def from_run(cls, run: dict, depth: int) -> "SelfAdversarial":
        return cls({qid: frozenset(h.docid for h in hits[:depth]) for qid, hits in run.items()})

    def __call__(self, candidates: list[Candidate], ctx: QueryContext) -> list[Candidate]:
        ranked_high = self.top_docids.get(ctx.qid, frozenset())
        return [c for c in candidates if c.docid in ranked_high]
