"""The mining core: queries + qrels + candidates + strategies -> MinedSet (with statistics)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from rankkit.data.qrels import Qrels
from rankkit.mining.candidates import Candidate, Candidates
from rankkit.mining.minedset import MinedQuery, MinedSet
from rankkit.mining.strategies import QueryContext, RankWindow, Strategy

RANK_BINS = ((1, 10), (11, 50), (51, 200), (201, None))


def rank_bin(rank: int) -> str:
    for low, high in RANK_BINS:
        if high is None or rank <= high:
            return f"{low}-{high}" if high is not None else f"{low}+"
    raise AssertionError("unreachable")


def _normalise(text: str) -> str:
    return " ".join(text.lower().split())


@dataclass(frozen=True)
class MiningConfig:
    seed: int = 0
    min_grade: int = 1  # judged grades at or above this are positives


def _best(scores: Sequence[float | None]) -> float | None:
    known = [s for s in scores if s is not None]
    return max(known) if known else None


def mine(
    queries: Mapping[str, str],
    qrels: Qrels,
    candidates: Candidates,
    strategies: Sequence[Strategy],
    config: MiningConfig = MiningConfig(),
    doc_texts: Mapping[str, str] | None = None,
    positive_scores: Mapping[str, float] | None = None,
    positive_teacher_scores: Mapping[str, float] | None = None,
) -> MinedSet:
    """Mine negatives for every query that has a positive.

    Labeled positives (and, with doc_texts, exact text duplicates of a positive) never come out as
    negatives. A positive's score, which margin and SimANS need, is taken from positive_scores or
    else from the candidates themselves (the best-scored positive the source retrieved).
    Queries are skipped, and counted in the statistics, when they have no positive, no
    candidates, or nothing left after the strategies; candidates naming docids absent from
    doc_texts are dropped and counted.
    """
    rng = np.random.default_rng(config.seed)
    counts: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    before: Counter[str] = Counter()
    mined: list[MinedQuery] = []
    counts["qrels_queries_without_text"] = len(set(qrels) - set(queries))
    for qid in sorted(queries):
        positives = {d: g for d, g in qrels.get(qid, {}).items() if g >= config.min_grade}
        if not positives:
            counts["skipped_no_positive"] += 1
            continue
        found = candidates.get(qid, [])
        if not found:
            counts["skipped_no_candidates"] += 1
            continue
        if doc_texts is not None:
            known = [c for c in found if c.docid in doc_texts]
            counts["unknown_docids_dropped"] += len(found) - len(known)
            found = known
        ctx = QueryContext(
            qid,
            positive_scores.get(qid) if positive_scores else _best([c.score for c in found if c.docid in positives]),
            positive_teacher_scores.get(qid)
            if positive_teacher_scores
            else _best([c.teacher_score for c in found if c.docid in positives]),
            rng,
        )
        deepest = max((c.rank for c in found), default=0)
        if any(isinstance(s, RankWindow) and deepest < s.min_rank for s in strategies):
            counts["window_beyond_depth"] += 1  # the window starts past the deepest candidate
        provenance = {
            c.docid: Candidate(c.docid, c.source, c.rank, c.score, c.teacher_score, "positive")
            for c in found
            if c.docid in positives
        }
        kept = [c for c in found if c.docid not in positives]
        counts["positives_dropped"] += len(found) - len(kept)
        if doc_texts is not None:
            positive_texts = {_normalise(doc_texts[d]) for d in positives if d in doc_texts}
            unique = [c for c in kept if _normalise(doc_texts[c.docid]) not in positive_texts]
            counts["positive_duplicates_dropped"] += len(kept) - len(unique)
            kept = unique
        for strategy in strategies:
            before[strategy.name] += len(kept)
            survivors = strategy(kept, ctx)
            dropped[strategy.name] += len(kept) - len(survivors)
            kept = survivors
        if not kept:
            counts["skipped_empty_after_strategies"] += 1
            continue
        chain = ">".join(s.name for s in strategies)
        negatives = [Candidate(c.docid, c.source, c.rank, c.score, c.teacher_score, chain) for c in kept]
        mined.append(MinedQuery(qid, queries[qid], positives, negatives, provenance))
    return MinedSet(
        mined,
        {"seed": config.seed, "min_grade": config.min_grade, "strategies": [repr(s) for s in strategies]},
        summarise(mined, counts, dropped, before),
    )


def summarise(mined: Sequence[MinedQuery], counts: Counter, dropped: Counter, before: Counter) -> dict:
    per_query = [len(q.negatives) for q in mined]
    ranks = Counter(rank_bin(c.rank) for q in mined for c in q.negatives)
    return {
        "queries_mined": len(mined),
        "negatives": sum(per_query),
        "negatives_per_query": {
            "mean": float(np.mean(per_query)) if per_query else 0.0,
            "min": min(per_query, default=0),
            "max": max(per_query, default=0),
        },
        "rank_histogram": {label: ranks.get(label, 0) for label in (rank_bin(low) for low, _ in RANK_BINS)},
        "share_dropped_by_strategy": {name: dropped[name] / before[name] if before[name] else 0.0 for name in before},
        **{
            key: counts.get(key, 0)
            for key in (
                "skipped_no_positive",
                "skipped_no_candidates",
                "skipped_empty_after_strategies",
                "qrels_queries_without_text",
                "unknown_docids_dropped",
                "positives_dropped",
                "positive_duplicates_dropped",
                "window_beyond_depth",
            )
        },
    }


def false_negative_rate(mined: MinedSet, full_qrels: Qrels, min_grade: int = 1) -> dict[str, dict[str, float]]:
    """Share of mined negatives that the full judgments call relevant, per source and rank bin
    (plus 'all'): the false negatives that shallow pooling hides."""
    totals: Counter[tuple[str, str]] = Counter()
    false: Counter[tuple[str, str]] = Counter()
    for q in mined.queries:
        judged = full_qrels.get(q.qid, {})
        for c in q.negatives:
            is_false = judged.get(c.docid, 0) >= min_grade
            for key in ((c.source, rank_bin(c.rank)), (c.source, "all")):
                totals[key] += 1
                false[key] += is_false
    result: dict[str, dict[str, float]] = {}
    for (source, band), total in sorted(totals.items()):
        result.setdefault(source, {})[band] = false[source, band] / total
    return result
