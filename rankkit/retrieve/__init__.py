"""Retrievers sharing one protocol (search / batch_search -> Run): BM25, dense, hybrid fusion."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from rankkit.index.manifest import Manifest
from rankkit.retrieve.base import Retriever
from rankkit.retrieve.fusion import FusionConfig
from rankkit.retrieve.hybrid import HybridRetriever, rrf_fuse
from rankkit.retrieve.options import BM25Params, DenseQuery

__all__ = ["BM25Params", "DenseQuery", "FusionConfig", "HybridRetriever", "Retriever", "open_retriever", "rrf_fuse"]


def open_retriever(
    folders: Sequence[str | Path],
    dense: DenseQuery = DenseQuery(),
    bm25: BM25Params = BM25Params(),
    fusion: FusionConfig | None = None,
    weights: Sequence[float] | None = None,
) -> Retriever:
    """One retriever for one index folder (its manifest says BM25 or dense), a hybrid for several
    (fused as `fusion` says, or with one weight per folder); `dense` says how a dense index's
    queries are encoded and searched (over the defaults its manifest records), `bm25` BM25's k1 and b."""
    retrievers: list[Retriever] = []
    for folder in folders:
        if Manifest.read(folder).kind == "bm25":
            from rankkit.retrieve.bm25 import BM25Retriever

            retrievers.append(BM25Retriever(folder, k1=bm25.k1, b=bm25.b))
        else:  # only a dense index needs faiss and torch: a BM25 search imports neither
            from rankkit.index.faiss_device import GpuOptions
            from rankkit.retrieve.dense import DenseRetriever

            retrievers.append(
                DenseRetriever.from_folder(
                    folder,
                    model=dense.model,
                    device=dense.device,
                    precision=dense.precision,
                    search_params=dense.search_params(),
                    query_prompt=dense.query_prompt,
                    gpu=GpuOptions(dense.gpu_shard, dense.gpu_fp16),
                )
            )
    return retrievers[0] if len(retrievers) == 1 else HybridRetriever(retrievers, weights, fusion)
