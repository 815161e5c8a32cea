"""The one Retriever protocol: search one query, or a batch, into hits of docid and score."""

from __future__ import annotations

from typing import Mapping, Protocol, runtime_checkable

from rankkit.data.runs import Hit, Run
from rankkit.errors import RankkitError

MAX_K = 10_000


@runtime_checkable
class Retriever(Protocol):
    """What BM25, dense and hybrid retrievers share (pyserini's searcher API, returning a Run)."""

    name: str

    def search(self, query: str, k: int = 10) -> list[Hit]: ...

    def batch_search(self, queries: Mapping[str, str], k: int = 10) -> Run: ...


def check_query(query: str) -> str:
    """The query with whitespace collapsed; empty queries are refused."""
    text = " ".join(query.split())
    if not text:
        raise RankkitError("the query is empty. Fix: give some query text")
    return text


def check_k(k: int) -> int:
    if not 1 <= k <= MAX_K:
        raise RankkitError(f"k={k} is out of range. Fix: ask for 1 to {MAX_K} hits")
    return k
