"""FAISS on GPU when faiss sees one (faiss-gpu installed in place of faiss-cpu), else on CPU."""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass

import faiss


@dataclass(frozen=True)
class GpuOptions:
    """How a searched index is put on the GPUs (faiss.GpuMultipleClonerOptions)."""

    shard: bool = False  # split the vectors over the GPUs (each holds 1/N) instead of a full copy on each
    fp16: bool = False  # store the vectors in float16 on the GPU: half the memory, slightly different scores


def gpu_count() -> int:
    return faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0


@functools.cache
def _warn_without_gpu(options: str) -> None:
    print(
        f"warning: {options} ignored: FAISS sees no GPU (faiss.get_num_gpus() == 0); searching on the CPU. "
        "Fix: install faiss-gpu (`make setup-gpu`) on a CUDA machine, or drop the option",
        file=sys.stderr,
    )


def to_search_device(index: faiss.Index, shard: bool = False, fp16: bool = False) -> faiss.Index:
    """The index moved to all visible GPUs when there are any and its type runs there (flat, IVF):
    a full replica on each GPU, or with `shard` 1/N of the vectors on each; `fp16` stores them in
    float16. Otherwise (no GPU, or HNSW, which FAISS only runs on CPU) the index itself; without a
    GPU, `shard` or `fp16` warn once on stderr."""
    if gpu_count() == 0:
        if shard or fp16:
            _warn_without_gpu(" and ".join(flag for flag, on in (("--gpu-shard", shard), ("--gpu-fp16", fp16)) if on))
        return index
    options = faiss.GpuMultipleClonerOptions()
    options.shard = shard
    options.useFloat16 = fp16
    try:
        return faiss.index_cpu_to_all_gpus(index, co=options)
    except (RuntimeError, AttributeError):
        return index


def to_cpu(index: faiss.Index) -> faiss.Index:
    """A CPU copy of a GPU index (single GPU, or replicas over several) for writing to disk; CPU
    indexes are returned as they are."""
    if gpu_count() == 0 or not any(tag in type(index).__name__ for tag in ("Gpu", "Replicas", "Shards")):
        return index
    return faiss.index_gpu_to_cpu(index)
