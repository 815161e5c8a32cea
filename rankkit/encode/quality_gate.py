"""The quality gate of an exported model: how closely it agrees with PyTorch fp32 on sample texts.

Two numbers, both 1.0 for a perfect export:
- min_cosine: the lowest cosine between a text's vector from the export and from PyTorch fp32
  (for a cross-encoder: the lowest correlation between the two backends' scores of one query's
  candidates);
- top10_overlap: the mean share of PyTorch's top 10 that the export also puts in its top 10 (each
  sample text as a query against the others; for a cross-encoder, each query's candidates).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from rankkit.errors import RankkitError

TOP = 10


@dataclass(frozen=True)
class Agreement:
    min_cosine: float
    top10_overlap: float
    texts: int  # how many texts (or pairs) were compared

    def as_record(self) -> dict[str, Any]:
        return {name: round(value, 5) if isinstance(value, float) else value for name, value in asdict(self).items()}

    def describe(self) -> str:
        return f"min cosine {self.min_cosine:.4f}, top-10 overlap {self.top10_overlap:.3f} on {self.texts} texts"


def vector_agreement(reference: np.ndarray, candidate: np.ndarray) -> Agreement:
    """Agreement of two backends' vectors of the same texts (rows)."""
    reference, candidate = np.asarray(reference, np.float64), np.asarray(candidate, np.float64)
    norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(candidate, axis=1)
    cosines = np.einsum("ij,ij->i", reference, candidate) / np.maximum(norms, 1e-12)
    overlaps = [_overlap(reference @ reference[i], candidate @ candidate[i], exclude=i) for i in range(len(reference))]
    return Agreement(float(cosines.min()), float(np.mean(overlaps)), len(reference))


def score_agreement(reference: np.ndarray, candidate: np.ndarray, groups: Sequence[Sequence[int]]) -> Agreement:
    """Agreement of two backends' scores of pairs, grouped by query (`groups`: each query's pair indices)."""
    correlations, overlaps = [], []
    for group in groups:
        ref, cand = np.asarray(reference)[list(group)], np.asarray(candidate)[list(group)]
        correlations.append(float(np.corrcoef(ref, cand)[0, 1]) if ref.std() > 0 and cand.std() > 0 else 1.0)
        overlaps.append(_overlap(ref, cand))
    return Agreement(min(correlations), float(np.mean(overlaps)), sum(len(g) for g in groups))


def check_agreement(agreement: Agreement, min_cosine: float, min_overlap: float, what: str) -> None:
    """Refuse an export below the gate, with its numbers and the way past it."""
    if agreement.min_cosine >= min_cosine and agreement.top10_overlap >= min_overlap:
        return
    raise RankkitError(
        f"{what} fails the quality gate: {agreement.describe()}, against PyTorch fp32; the gate asks "
        f"min cosine >= {min_cosine} and top-10 overlap >= {min_overlap}. Fix: run without --quantize "
        "(or with --backend torch), or lower --gate-min-cosine / --gate-min-overlap if this loss is acceptable"
    )


def _overlap(reference_scores: np.ndarray, candidate_scores: np.ndarray, exclude: int | None = None) -> float:
    """Share of the reference's top 10 in the candidate's top 10 (ties broken by index)."""
    top = min(TOP, len(reference_scores) - (exclude is not None))
    if top <= 0:
        return 1.0
    ranked = [np.argsort(-scores, kind="stable") for scores in (reference_scores, candidate_scores)]
    tops = [[i for i in order if i != exclude][:top] for order in ranked]
    return len(set(tops[0]) & set(tops[1])) / top
