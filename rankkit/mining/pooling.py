"""Provenance from the pooling retriever: where each document stood in the run whose top
documents were judged, i.e. whether it ever had a chance to be labeled."""

from __future__ import annotations

from rankkit.data.runs import Run
from rankkit.mining.candidates import Candidate
from rankkit.mining.minedset import MinedQuery, MinedSet


def with_pooling_provenance(mined: MinedSet, pool_run: Run, source: str) -> MinedSet:
    """The same queries, positives and negatives, each with its provenance (source, rank, score)
    taken from `pool_run`, the retriever whose pool the judgments came from.

    CET's light selection model learns P(judged | provenance). Negatives mined from another
    retriever (a dense one) carry that retriever's ranks, which say nothing about the pool.
    Negatives beyond the run's depth get rank depth + 1 and the query's lowest score in the run:
    for the pool, never retrieved. Positives the run did not retrieve get no provenance (the
    selection model's 'not retrieved' features)."""
    queries = []
    for q in mined.queries:
        hits = pool_run.get(q.qid, [])
        found = {h.docid: (rank, h.score) for rank, h in enumerate(hits, start=1)}
        beyond = (len(hits) + 1, min((h.score for h in hits), default=0.0))
        negatives = [
            Candidate(c.docid, source, *found.get(c.docid, beyond), c.teacher_score, c.strategy) for c in q.negatives
        ]
        provenance = {d: Candidate(d, source, *found[d], strategy="positive") for d in q.positives if d in found}
        queries.append(MinedQuery(q.qid, q.query, q.positives, negatives, provenance))
    return MinedSet(queries, {**mined.config, "provenance_from": source}, mined.stats)
