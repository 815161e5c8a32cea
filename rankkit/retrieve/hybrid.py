"""Hybrid retrieval: several retrievers' top `depth` hits fused into one ranking (RRF, convex or
z-score fusion: see rankkit.retrieve.fusion)."""

from __future__ import annotations

from typing import Mapping, Sequence

from rankkit.data.runs import Hit, Run
from rankkit.errors import RankkitError
from rankkit.retrieve.base import Retriever, check_k
from rankkit.retrieve.fusion import DEFAULT_RRF_K, FusionConfig, fuse, fusion_weights, rrf_fuse

__all__ = ["DEFAULT_RRF_K", "HybridRetriever", "retriever_kind", "rrf_fuse"]


def retriever_kind(retriever: Retriever) -> str:
    """'dense', 'bm25' or another kind, from the retriever's name ('dense:NAME', 'bm25:NAME')."""
    return retriever.name.split(":", 1)[0]


class HybridRetriever:
    """Fuse retrievers as `config` says; each contributes its top `config.depth` hits."""

    def __init__(
        self,
        retrievers: Sequence[Retriever],
        weights: Sequence[float] | None = None,
        config: FusionConfig | None = None,
    ):
        if len(retrievers) < 2:
            raise RankkitError(
                f"hybrid search needs 2 or more retrievers (got {len(retrievers)}). Fix: pass two or more --index"
            )
        self.retrievers = list(retrievers)
        self.config = config or FusionConfig()
        self.weights = fusion_weights([retriever_kind(r) for r in self.retrievers], self.config, weights)
        self.name = "hybrid:" + "+".join(r.name for r in self.retrievers)

    def fuse(self, rankings: Sequence[Sequence[Hit]], k: int) -> list[Hit]:
        return fuse(rankings, self.weights, k, self.config)

    def search(self, query: str, k: int = 10) -> list[Hit]:
        depth = max(self.config.depth, check_k(k))
        return self.fuse([r.search(query, depth) for r in self.retrievers], k)

    def batch_search(self, queries: Mapping[str, str], k: int = 10) -> Run:
        depth = max(self.config.depth, check_k(k))
        runs = [r.batch_search(queries, depth) for r in self.retrievers]
        return {qid: self.fuse([run.get(qid, []) for run in runs], k) for qid in queries}
