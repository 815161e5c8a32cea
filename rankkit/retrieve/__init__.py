"""Retrievers sharing one protocol (search / batch_search -> Run): BM25, dense, hybrid fusion."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from typing import TYPE_CHECKING

from rankkit.index.manifest import Manifest
from rankkit.retrieve.base import Retriever
from rankkit.retrieve.fusion import FusionConfig
from rankkit.retrieve.hybrid import HybridRetriever, rrf_fuse

if TYPE_CHECKING:
    from rankkit.index.faiss_device import GpuOptions

__all__ = ["FusionConfig", "HybridRetriever", "Retriever", "open_retriever", "rrf_fuse"]


def open_retriever(folders: Sequence[str | Path], model: str | None = None, weights: Sequence[float] | None = None,
                   k1: float | None = None, b: float | None = None, device: str | None = None,
                   precision: str = "fp32", search_params: dict[str, int] | None = None,
                   query_prompt: str | None = None, fusion: FusionConfig | None = None,
                   gpu: GpuOptions | None = None) -> Retriever:
    """One retriever for one index folder (its manifest says BM25 or dense), a hybrid for several
    (fused as `fusion` says); `device`, `precision` and `query_prompt` are the dense query
    encoder's, `search_params` (nprobe, efSearch) the dense index's, over the defaults its manifest
    records, and `gpu` how a dense index is put on the GPUs (default: as GpuOptions says)."""
    retrievers: list[Retriever] = []
    for folder in folders:
        if Manifest.read(folder).kind == "bm25":
            from rankkit.retrieve.bm25 import DEFAULT_B, DEFAULT_K1, BM25Retriever

            retrievers.append(BM25Retriever(folder, k1=k1 if k1 is not None else DEFAULT_K1,
                                            b=b if b is not None else DEFAULT_B))
        else:  # only a dense index needs faiss and torch: a BM25 search imports neither
            from rankkit.index.faiss_device import GpuOptions
            from rankkit.retrieve.dense import DenseRetriever

            retrievers.append(DenseRetriever.from_folder(folder, model=model, device=device, precision=precision,
                                                         search_params=search_params, query_prompt=query_prompt,
                                                         gpu=gpu or GpuOptions()))
    return retrievers[0] if len(retrievers) == 1 else HybridRetriever(retrievers, weights, fusion)
