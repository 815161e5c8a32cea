"""Hybrid retrieval: reciprocal rank fusion (Cormack, Clarke and Buettcher, SIGIR 2009) of
several retrievers' rankings, each with a weight: score(d) = sum_i w_i / (rrf_k + rank_i(d))."""

from __future__ import annotations

from typing import Mapping, Sequence

from rankkit.data.runs import Hit, Run
from rankkit.errors import RankkitError
from rankkit.retrieve.base import Retriever, check_k

DEFAULT_RRF_K = 60


def rrf_fuse(rankings: Sequence[Sequence[Hit]], weights: Sequence[float], k: int,
             rrf_k: int = DEFAULT_RRF_K) -> list[Hit]:
    """Fuse ranked hit lists by weighted reciprocal rank; ties broken by docid for determinism."""
    fused: dict[str, float] = {}
    for hits, weight in zip(rankings, weights, strict=True):
        for rank, hit in enumerate(hits, start=1):
            fused[hit.docid] = fused.get(hit.docid, 0.0) + weight / (rrf_k + rank)
    best = sorted(fused.items(), key=lambda item: (-item[1], item[0]))[:k]
    return [Hit(docid, score) for docid, score in best]


class HybridRetriever:
    """Fuse retrievers by RRF; each contributes its top `depth` hits."""

    def __init__(self, retrievers: Sequence[Retriever], weights: Sequence[float] | None = None,
                 rrf_k: int = DEFAULT_RRF_K, depth: int = 1000):
        weights = list(weights) if weights is not None else [1.0] * len(retrievers)
        if len(retrievers) < 2 or len(weights) != len(retrievers):
            raise RankkitError(f"hybrid search needs 2 or more retrievers and one weight each "
                               f"(got {len(retrievers)} retrievers, {len(weights)} weights). "
                               "Fix: pass one --weight per --index")
        self.retrievers, self.weights, self.rrf_k, self.depth = list(retrievers), weights, rrf_k, depth
        self.name = "hybrid:" + "+".join(r.name for r in self.retrievers)

    def search(self, query: str, k: int = 10) -> list[Hit]:
        rankings = [r.search(query, max(self.depth, check_k(k))) for r in self.retrievers]
        return rrf_fuse(rankings, self.weights, k, self.rrf_k)

    def batch_search(self, queries: Mapping[str, str], k: int = 10) -> Run:
        depth = max(self.depth, check_k(k))
        runs = [r.batch_search(queries, depth) for r in self.retrievers]
        return {qid: rrf_fuse([run.get(qid, []) for run in runs], self.weights, k, self.rrf_k) for qid in queries}
