"""Candidates for mining: retrieved documents with their provenance."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from rankkit.data.runs import Run
from rankkit.retrieve.base import Retriever
from rankkit.retrieve.progress import search_with_progress


@dataclass(slots=True)
class Candidate:
    """One retrieved document for one query, and where it came from."""

    docid: str
    source: str = ""  # the retriever or run that found it
    rank: int | None = None  # 1-based rank in that source (None: not recorded)
    score: float | None = None  # the source's score (None: not recorded)
    teacher_score: float | None = None  # a cross-encoder's score, when a teacher scored it
    strategy: str = ""  # the strategies that kept it, filled in by mine()


Candidates = dict[str, list[Candidate]]


def candidates_from_run(run: Run, source: str) -> Candidates:
    """Every hit of a run as a candidate, ranks from 1 in score order."""
    return {
        qid: [Candidate(hit.docid, source, rank, hit.score) for rank, hit in enumerate(hits, start=1)]
        for qid, hits in run.items()
    }


def candidates_from_retriever(retriever: Retriever, queries: Mapping[str, str], depth: int) -> Candidates:
    """The top-`depth` hits of a retriever (BM25, dense, hybrid) for each query (a progress bar
    counts the queries where there are many)."""
    return candidates_from_run(
        search_with_progress(retriever, queries, depth, desc="retrieving candidates"), retriever.name
    )


def merge_candidates(*sources: Candidates) -> Candidates:
    """Candidates from several sources; a document found by more than one keeps its first source."""
    merged: Candidates = {}
    for candidates in sources:
        for qid, found in candidates.items():
            kept = merged.setdefault(qid, [])
            seen = {c.docid for c in kept}
            kept.extend(c for c in found if c.docid not in seen)
    return merged
