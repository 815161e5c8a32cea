"""Positive knowledge from a teacher's scores: rankings sampled from the Plackett-Luce model at a
temperature, and the documents that a majority of samples rank in the top m (self-consistency).

Gumbel-top-k (Kool, van Hoof and Welling, ICML 2019) draws exact Plackett-Luce rankings: adding
independent Gumbel(0, 1) noise to scores / T and sorting gives a ranking with probability
prod_i exp(s_i / T) / sum_{j not yet ranked} exp(s_j / T)."""

from __future__ import annotations

import numpy as np

from rankkit.errors import RankkitError


def plackett_luce_samples(
    scores: np.ndarray, samples: int, temperature: float, rng: np.random.Generator, top: int | None = None
) -> np.ndarray:
    """`samples` rankings of the items, as item indices best first: shape [samples, top or n].

    temperature -> 0 gives the teacher's own ranking every time; large temperatures approach
    uniformly random rankings."""
    if temperature <= 0:
        raise RankkitError(f"Plackett-Luce temperature {temperature} must be positive. Fix: pass e.g. 1.0")
    scores = np.asarray(scores, dtype=np.float64)
    perturbed = scores / temperature + rng.gumbel(size=(samples, scores.size))
    order = np.argsort(-perturbed, axis=1, kind="stable")
    return order[:, :top] if top is not None else order


def self_consistent(rankings: np.ndarray, top_m: int, majority: float = 0.5) -> dict[int, float]:
    """Items that more than `majority` of the sampled rankings put in their top m, each with its
    agreement (the share of samples that do) as confidence, most agreed first."""
    counts = np.bincount(rankings[:, :top_m].ravel(), minlength=int(rankings.max()) + 1)
    agreement = counts / rankings.shape[0]
    kept = [int(i) for i in np.argsort(-agreement, kind="stable") if agreement[i] > majority]
    return {i: float(agreement[i]) for i in kept}
