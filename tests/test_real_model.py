"""Integration tests on the real packaged all-MiniLM-L6-v2 and pyserini (slow: run by `make test-slow`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

RANKKIT = [sys.executable, "-m", "rankkit.cli"]


def rankkit(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*RANKKIT, *args], capture_output=True, text=True, cwd=cwd, timeout=1200)


def test_quickstart_on_the_bundled_sample(tmp_path):
    """The README's main job, as the console script runs it, on the real model."""
    result = rankkit("quickstart", "--output", str(tmp_path / "qs"))
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "qs" / "report.json").read_text())
    assert set(report) == {"bm25", "dense", "hybrid"}
    # the sample was written so that paraphrased answers reward semantic matching
    assert report["dense"]["nDCG@10"] > report["bm25"]["nDCG@10"] > 0.2
    assert report["hybrid"]["R(rel=2)@100"] >= report["bm25"]["R(rel=2)@100"]


def test_eval_reproduces_the_published_dl19_bm25_figure(shared_data):
    result = rankkit(
        "eval",
        str(shared_data / "dl19" / "run.bm25.top100.trec"),
        str(shared_data / "dl19" / "qrels.txt"),
        "--preset",
        "trec-dl",
    )
    assert result.returncode == 0, result.stderr
    assert "0.5058" in result.stdout


def test_real_encoder_matches_sentence_transformers(shared_data):
    from sentence_transformers import SentenceTransformer

    from rankkit.data import read_corpus
    from rankkit.encode import BiEncoder

    texts = [doc.contents for doc, _ in zip(read_corpus(shared_data / "dl19" / "collection.tsv"), range(64))]
    ours = BiEncoder("default", device="cpu")
    reference = SentenceTransformer(str(ours.model_dir), device="cpu").encode(texts, normalize_embeddings=True)
    assert np.abs(ours.encode(texts) - reference).max() < 1e-5
