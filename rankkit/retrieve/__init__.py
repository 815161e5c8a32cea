"""Retrievers sharing one protocol (search / batch_search -> Run): one per index kind (BM25,
dense, SPLADE, ... through rankkit.index.kinds), and hybrid fusion of several."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from rankkit.retrieve.base import Retriever
from rankkit.retrieve.fusion import FusionConfig
from rankkit.retrieve.hybrid import HybridRetriever, rrf_fuse
from rankkit.retrieve.options import BM25Params, DenseQuery, QueryOptions

__all__ = [
    "BM25Params",
    "DenseQuery",
    "FusionConfig",
    "HybridRetriever",
    "QueryOptions",
    "Retriever",
    "open_retriever",
    "rrf_fuse",
]


def open_retriever(
    folders: Sequence[str | Path],
    *groups: Any,
    fusion: FusionConfig | None = None,
    weights: Sequence[float] | None = None,
) -> Retriever:
    """One retriever for one index folder (its manifest says its kind), a hybrid for several
    (fused as `fusion` says, or with one weight per folder). `groups` are the query option groups
    (DenseQuery, BM25Params, ...): each index takes the one of its kind, else that group's defaults.
    Only the kinds opened are imported: a BM25 search loads neither faiss nor torch."""
    from rankkit.index.kinds import open_index

    query = QueryOptions(*groups)
    retrievers = [open_index(folder, query) for folder in folders]
    return retrievers[0] if len(retrievers) == 1 else HybridRetriever(retrievers, weights, fusion)
