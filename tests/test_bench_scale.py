"""benchmarks/bench_scale.py at a tiny size: each index built in its own subprocess, recall against
exact search, the result written to $RANKKIT_RESULTS (the 100k / 1M sizes are run by hand)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.slow  # three fresh subprocesses that import torch: 15-45 s on 2 cores
def test_bench_scale_tiny(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import bench_scale

    monkeypatch.setenv("RANKKIT_RESULTS", str(tmp_path / "results"))
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "bench_scale.py",
            "--sizes",
            "400",
            "--factories",
            "Flat",
            "HNSW32",
            "--queries",
            "10",
            "--embeddings-from",
            str(tmp_path / "none"),
        ],
    )
    ballast = np.ones(1024 * 2**20 // 8)  # 1 GiB in this (parent) process
    bench_scale.main()
    del ballast

    result = json.loads((tmp_path / "results" / "scale.json").read_text())
    rows = {row["factory"]: row for row in result["rows"]}
    assert set(rows) == {"Flat", "HNSW32"}
    assert rows["Flat"]["recall@100"] == 1.0 and rows["Flat"]["search params"] == "exact"
    assert rows["HNSW32"]["search params"].startswith("efSearch ")
    for row in rows.values():
        assert row["n"] == 400 and row["vectors"] == "synthetic"
        assert row["on disk MiB"] > 0 and row["peak RSS MiB"] > 0 and row["build s"] > 0
        # each worker's own peak, not the parent's RSS it was forked with (wait4's ru_maxrss kept that)
        assert row["peak RSS MiB"] < 1024 and row["above import MiB"] < 100
    assert any("unit-norm isotropic Gaussian" in note for note in result["meta"]["notes"])
    assert not result["extra_tables"]  # no --processes


def test_ivf_lists_and_factory(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from bench_scale import resolve_factory

    assert resolve_factory("IVF,PQ32", 1_000_000) == "IVF4096,PQ32"
    assert resolve_factory("IVF,PQ32", 100_000) == "IVF1024,PQ32"
    assert resolve_factory("HNSW32", 100_000) == "HNSW32"
