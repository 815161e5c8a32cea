"""benchmarks/gpu_check.py on a machine without a GPU: tiny model and sizes, the GPU figures
skipped with the reason, the CPU ones measured, the result written to $RANKKIT_RESULTS."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
NO_GPU = "skipped: no GPU (faiss.get_num_gpus() == 0, torch.cuda.is_available() False)"


def test_gpu_check_without_gpu_skips_the_gpu_figures(tiny_model, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import gpu_check

    monkeypatch.setattr(gpu_check, "gpu_count", lambda: 0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("RANKKIT_RESULTS", str(tmp_path / "results"))
    monkeypatch.setattr(sys, "argv", ["gpu_check.py"])
    gpu_check.main(["--model", str(tiny_model), "--vectors", "600", "--queries", "20", "--passages", "24",
                    "--steps", "1", "--threads", "1"])

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
