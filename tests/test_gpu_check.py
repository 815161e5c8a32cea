"""benchmarks/gpu_check.py on a machine without a GPU: tiny model and sizes, the GPU figures
skipped with the reason, the CPU ones measured, the result written to $RANKKIT_RESULTS."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import faiss
import torch
from test_faiss_device import ClonerOptions

from rankkit.index import faiss_device

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
NO_GPU = "skipped: no GPU (faiss.get_num_gpus() == 0, torch.cuda.is_available() False)"


def test_gpu_check_without_gpu_skips_the_gpu_figures(tiny_model, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import gpu_check

    monkeypatch.setattr(gpu_check, "gpu_count", lambda: 0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("RANKKIT_RESULTS", str(tmp_path / "results"))
    monkeypatch.setattr(sys, "argv", ["gpu_check.py"])
    gpu_check.main(
        [
            "--model",
            str(tiny_model),
            "--vectors",
            "600",
            "--queries",
            "20",
            "--passages",
            "24",
            "--steps",
            "1",
            "--threads",
            "1",
        ]
    )

    result = json.loads((tmp_path / "results" / "gpu-check.json").read_text())
    assert (tmp_path / "results" / "gpu-check.md").is_file()
    assert result["meta"]["params"]["quick"] is True  # no GPU: the quick sizes
    parts = [(r["part"], r["setting"].split(",")[0]) for r in result["rows"]]
    assert ("encode", "fp32") in parts and ("faiss search", "Flat") in parts
    assert sum(part == "train" for part, _ in parts) == 2
    for row in result["rows"]:
        assert row["GPU"] == NO_GPU, row
        assert row["GPU / CPU"] is None
        assert isinstance(row["CPU"], float) and row["CPU"] > 0 or row["check"].startswith("skipped"), row


def test_gpu_check_faiss_rows_with_a_faked_gpu(tiny_model, tmp_path, monkeypatch):
    """The GPU FAISS path, with index_cpu_to_all_gpus faked to return the CPU index: the GPU Flat
    returns the CPU's ids, and the torch rows (no CUDA) are still skipped."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import gpu_check

    for module in (gpu_check, faiss_device):
        monkeypatch.setattr(module, "gpu_count", lambda: 1)
    monkeypatch.setattr(faiss, "GpuMultipleClonerOptions", ClonerOptions, raising=False)
    monkeypatch.setattr(faiss, "index_cpu_to_all_gpus", lambda index, co=None: index)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("RANKKIT_RESULTS", str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["gpu_check.py"])
    gpu_check.main(
        [
            "--quick",
            "--model",
            str(tiny_model),
            "--vectors",
            "600",
            "--queries",
            "20",
            "--passages",
            "24",
            "--steps",
            "1",
            "--threads",
            "1",
        ]
    )

    rows = json.loads((tmp_path / "gpu-check.json").read_text())["rows"]
    faiss_rows = [r for r in rows if r["part"].startswith("faiss")]
    assert len(faiss_rows) == 4 and all(isinstance(r["GPU"], float) and r["GPU / CPU"] for r in faiss_rows)
    flat = next(r for r in faiss_rows if r["part"] == "faiss search" and r["setting"].startswith("Flat"))
    assert flat["check"].startswith("same ids (in order) for 20 of 20 queries")
    assert all(r["GPU"] == NO_GPU.replace("== 0", "== 1") for r in rows if not r["part"].startswith("faiss"))
