"""Paired comparison of runs over the same queries: mean difference and paired t-test p-value."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from rankkit.eval.measures import Evaluation


@dataclass(frozen=True)
class Comparison:
    measure: str
    baseline: str
    other: str
    mean_difference: float  # other - baseline
    p_value: float  # two-sided paired t-test; nan when every difference is equal
    queries: int


def paired_compare(
    measure: str, baseline_name: str, baseline: Evaluation, other_name: str, other: Evaluation
) -> Comparison:
    """Compare two evaluations of one measure on the queries both evaluated."""
    a, b = baseline.per_query[measure], other.per_query[measure]
    qids = sorted(set(a) & set(b))
    x = np.array([a[q] for q in qids])
    y = np.array([b[q] for q in qids])
    diff = y - x
    p = float(stats.ttest_rel(y, x).pvalue) if len(qids) > 1 and np.ptp(diff) > 0 else float("nan")
    return Comparison(measure, baseline_name, other_name, float(diff.mean()) if len(qids) else 0.0, p, len(qids))
