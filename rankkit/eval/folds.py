"""k-fold splits by query, for collections with too few queries to split once (DL19, the
classic collections): every query is tested exactly once, by a model that never trained on it."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from rankkit.errors import RankkitError


def kfold_queries(qids: Iterable[str], k: int, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    """(train qids, test qids) for each of k folds; a seeded shuffle, folds differ in size by <= 1."""
    ordered = sorted(set(qids))
    if not 2 <= k <= len(ordered):
        raise RankkitError(f"cannot make {k} folds of {len(ordered)} queries. Fix: use 2 <= k <= {len(ordered)}")
    shuffled = [ordered[i] for i in np.random.default_rng(seed).permutation(len(ordered))]
    folds = [shuffled[i::k] for i in range(k)]
    return [(sorted(q for j, fold in enumerate(folds) if j != i for q in fold), sorted(folds[i])) for i in range(k)]
