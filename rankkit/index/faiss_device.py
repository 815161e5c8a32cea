"""FAISS on GPU when faiss sees one (faiss-gpu installed in place of faiss-cpu), else on CPU."""

from __future__ import annotations

import faiss


def gpu_count() -> int:
    return faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0


def to_search_device(index: faiss.Index) -> faiss.Index:
    """The index moved to all visible GPUs when there are any and its type runs there (flat, IVF);
    otherwise (no GPU, or HNSW, which FAISS only runs on CPU) the index itself."""
    if gpu_count() == 0:
        return index
    try:
        return faiss.index_cpu_to_all_gpus(index)
    except (RuntimeError, AttributeError):
        return index


def to_cpu(index: faiss.Index) -> faiss.Index:
    """A CPU copy of a GPU index (single GPU, or replicas over several) for writing to disk; CPU
    indexes are returned as they are."""
    if gpu_count() == 0 or not any(tag in type(index).__name__ for tag in ("Gpu", "Replicas", "Shards")):
        return index
    return faiss.index_gpu_to_cpu(index)
