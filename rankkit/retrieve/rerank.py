"""Rerank a run's top documents with a cross-encoder."""

from __future__ import annotations

from typing import Mapping, Sequence

from rankkit.data.runs import Hit, Run
from rankkit.encode.crossencoder import CrossEncoder
from rankkit.errors import RankkitError


def rerank_run(
    run: Run,
    queries: Mapping[str, str],
    doc_texts: Mapping[str, str],
    model: CrossEncoder,
    depth: int = 100,
    show_progress: bool = False,
) -> Run:
    """Each query's top `depth` hits rescored by the cross-encoder, best first; hits below depth
    keep their order beneath them (scores shifted below the lowest reranked score)."""
    missing_queries = sorted(set(run) - set(queries))
    if missing_queries:
        raise RankkitError(
            f"{len(missing_queries)} run queries have no text (e.g. {missing_queries[0]!r}). "
            "Fix: pass the queries file the run was made from"
        )
    pairs, owners = [], []
    for qid, hits in run.items():
        for hit in hits[:depth]:
            if hit.docid not in doc_texts:
                raise RankkitError(
                    f"run names docid {hit.docid!r} (query {qid!r}) that the corpus lacks. "
                    "Fix: pass the corpus the run was retrieved from"
                )
            pairs.append((queries[qid], doc_texts[hit.docid]))
            owners.append((qid, hit.docid))
    scores = model.score(pairs, show_progress=show_progress)
    rescored: Run = {qid: [] for qid in run}
    for (qid, docid), score in zip(owners, scores):
        rescored[qid].append(Hit(docid, float(score)))
    return {qid: splice_reranked(rescored[qid], hits[depth:]) for qid, hits in run.items()}


def splice_reranked(rescored: list[Hit], tail: Sequence[Hit]) -> list[Hit]:
    """The rescored hits best first, then the tail in its order with scores shifted below the
    lowest rescored one, so scores fall along the whole list."""
    top = sorted(rescored, key=lambda h: -h.score)
    floor = min((h.score for h in top), default=0.0)
    return top + [Hit(h.docid, floor - rank) for rank, h in enumerate(tail, start=1)]
