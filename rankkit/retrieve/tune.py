"""Tune hybrid fusion on dev queries: every method and alpha on a grid, scored by one measure on
a dense and a BM25 run of the same queries; the best becomes a FusionConfig (fusion.json) that
`rankkit search`, `serve` and `quickstart` read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from rankkit.data.qrels import Qrels
from rankkit.data.runs import Run
from rankkit.errors import RankkitError
from rankkit.eval.measures import evaluate, resolve_measures
from rankkit.retrieve.fusion import (
    DEFAULT_DEPTH,
    FUSION_METHODS,
    FusionConfig,
    combine_normalised,
    normalise_lists,
    rrf_fuse,
)

DEFAULT_ALPHAS: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(21))
TUNE_CUTOFF = 100  # fused lists are cut here: enough for measures at cutoffs <= 100


@dataclass(frozen=True)
class TuneResult:
    best: FusionConfig
    score: float  # the best's mean measure on the dev queries
    measure: str
    queries: int
    grid: list[dict] = field(default_factory=list)  # {method, alpha, score} for every setting tried


def _top(run: Run, depth: int) -> Run:
    return {qid: hits[:depth] for qid, hits in run.items()}


def fused_runs(
    dense: Run, bm25: Run, method: str, alphas: Sequence[float], k: int = TUNE_CUTOFF, rrf_k: int = 60
) -> dict[float, Run]:
    """{alpha: fused run} for one method; each query's lists are normalised once for all alphas.
    RRF has no alpha: it gives one run, keyed by alpha 0.5."""
    qids = sorted(set(dense) | set(bm25))
    if method == "rrf":
        return {0.5: {qid: rrf_fuse([dense.get(qid, []), bm25.get(qid, [])], [1.0, 1.0], k, rrf_k) for qid in qids}}
    normalised = {qid: normalise_lists([dense.get(qid, []), bm25.get(qid, [])], method) for qid in qids}  # type: ignore[arg-type]
    return {
        alpha: {qid: combine_normalised(normalised[qid], [alpha, 1.0 - alpha], k) for qid in qids} for alpha in alphas
    }


def tune_fusion(
    dense: Run,
    bm25: Run,
    qrels: Qrels,
    measure: str = "nDCG@10",
    methods: Sequence[str] = FUSION_METHODS,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    depth: int = DEFAULT_DEPTH,
    k: int = TUNE_CUTOFF,
) -> TuneResult:
    """The method and alpha with the best mean `measure` over the judged queries of both runs
    (ties: the first in the grid's order, rrf then convex then zscore, alphas ascending)."""
    unknown = sorted(set(methods) - set(FUSION_METHODS))
    if unknown or not methods:
        raise RankkitError(f"unknown fusion methods {unknown}. Fix: use some of {', '.join(FUSION_METHODS)}")
    judged = set(qrels) & (set(dense) | set(bm25))
    if not judged:
        raise RankkitError(
            "no dev query is both judged and in the runs. Fix: give runs of the dev queries "
            "and the qrels that judge them"
        )
    dense = _top({q: h for q, h in dense.items() if q in judged}, depth)
    bm25 = _top({q: h for q, h in bm25.items() if q in judged}, depth)
    dev_qrels = {q: qrels[q] for q in judged}
    measures = resolve_measures(None, [measure])
    name = str(measures[0])
    grid: list[dict] = []
    for method in (m for m in FUSION_METHODS if m in methods):
        for alpha, run in fused_runs(dense, bm25, method, alphas, k).items():
            score = evaluate(run, dev_qrels, measures).aggregate[name]
            grid.append({"method": method, "alpha": None if method == "rrf" else alpha, "score": score})
    best = max(grid, key=lambda row: row["score"])  # max keeps the first of equal scores
    config = FusionConfig(method=best["method"], alpha=best["alpha"] if best["alpha"] is not None else 0.5, depth=depth)
    return TuneResult(config, best["score"], name, len(judged), grid)
