"""FAISS GPU options (--gpu-shard, --gpu-fp16): they reach faiss.index_cpu_to_all_gpus as
GpuMultipleClonerOptions when FAISS sees GPUs (faked here: no GPU on the test machine), and warn
once on stderr without one."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import faiss
import pytest
from test_cli import ok

from rankkit.index import faiss_device
from rankkit.index.dense import DenseBuildConfig, build_dense_index
from rankkit.index.faiss_device import to_search_device
from rankkit.serve.config import ServeConfig
from rankkit.serve.engine import SearchEngine


class ClonerOptions:
    """Stands in for faiss.GpuMultipleClonerOptions (only faiss-gpu has it)."""

    shard = False
    useFloat16 = False


@pytest.fixture
def two_gpus(monkeypatch) -> list[SimpleNamespace]:
    """faiss_device as if FAISS saw 2 GPUs; each index_cpu_to_all_gpus call is recorded and returns
    the CPU index (which the rest of rankkit then searches as usual)."""
    calls: list[SimpleNamespace] = []

    def to_all_gpus(index, co=None):
        calls.append(SimpleNamespace(index=index, shard=co.shard, fp16=co.useFloat16))
        return index

    monkeypatch.setattr(faiss_device, "gpu_count", lambda: 2)
    monkeypatch.setattr(faiss, "GpuMultipleClonerOptions", ClonerOptions, raising=False)
    monkeypatch.setattr(faiss, "index_cpu_to_all_gpus", to_all_gpus)
    return calls


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(faiss_device, "gpu_count", lambda: 0)
    faiss_device._warn_without_gpu.cache_clear()
    yield
    faiss_device._warn_without_gpu.cache_clear()


@pytest.mark.parametrize("shard, fp16", [(False, False), (True, False), (False, True), (True, True)])
def test_options_reach_faiss(two_gpus, shard, fp16):
    index = faiss.IndexFlatIP(4)
    assert to_search_device(index, shard=shard, fp16=fp16) is index
    assert [(c.index, c.shard, c.fp16) for c in two_gpus] == [(index, shard, fp16)]


def test_without_gpu_the_options_warn_once_and_change_nothing(no_gpu, capsys):
    index = faiss.IndexFlatIP(4)
    assert to_search_device(index) is index
    assert capsys.readouterr().err == ""
    for _ in range(3):
        assert to_search_device(index, shard=True, fp16=True) is index
    err = capsys.readouterr().err
    assert err.count("warning:") == 1
    assert "--gpu-shard and --gpu-fp16 ignored" in err and "faiss.get_num_gpus() == 0" in err and "Fix:" in err


@pytest.fixture(scope="module")
def dense_index(tmp_path_factory, sample_dir, tiny_model) -> Path:
    from rankkit.encode.biencoder import BiEncoder

    out = tmp_path_factory.mktemp("gpu-options") / "dense"
    build_dense_index(sample_dir / "collection.tsv", out, BiEncoder(tiny_model, device="cpu"), DenseBuildConfig())
    return out


def test_search_cli_passes_the_options(two_gpus, dense_index):
    result = ok(
        "search", "--index", dense_index, "--query", "how do stars form", "--device", "cpu", "--gpu-shard", "--gpu-fp16"
    )
    assert "s0" in result.output  # the hits table
    assert [(c.shard, c.fp16) for c in two_gpus] == [(True, True)]


def test_search_cli_defaults_to_replicas_in_fp32(two_gpus, dense_index):
    ok("search", "--index", dense_index, "--query", "how do stars form", "--device", "cpu")
    assert [(c.shard, c.fp16) for c in two_gpus] == [(False, False)]


def test_search_cli_without_gpu_warns(no_gpu, dense_index):
    result = ok("search", "--index", dense_index, "--query", "how do stars form", "--device", "cpu", "--gpu-fp16")
    assert "--gpu-fp16 ignored: FAISS sees no GPU" in result.stderr


def test_serve_engine_passes_the_options(two_gpus, dense_index):
    engine = SearchEngine(ServeConfig(indexes=(str(dense_index),), device="cpu", texts=False, gpu_shard=True))
    try:
        assert [(c.shard, c.fp16) for c in two_gpus] == [(True, False)]
        assert len(engine.search_batch("dense", [("how do stars form", 3)])[0]) == 3
    finally:
        engine.close()


def test_serve_cli_has_the_options():
    result = ok("serve", "--help")
    assert "--gpu-shard" in result.output and "--gpu-fp16" in result.output
