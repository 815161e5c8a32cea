"""Index builds show one progress bar over the whole corpus: dense encoding counts characters
across every chunk (it used to restart per 20k-document chunk), BM25 indexing counts documents."""

from __future__ import annotations

import pytest

from rankkit.data.corpus import read_corpus
from rankkit.encode import BiEncoder
from rankkit.index import progress as progress_module
from rankkit.index.dense import DenseBuildConfig, build_dense_index


@pytest.fixture
def bars(monkeypatch):
    """Every bar the index builders open, kept for inspection once closed."""
    opened = []

    def recording_bar(total, desc, unit):
        bar = progress_module.corpus_bar(total, desc, unit)
        opened.append(bar)
        return bar

    monkeypatch.setattr("rankkit.index.dense.corpus_bar", recording_bar)
    monkeypatch.setattr("rankkit.index.bm25.corpus_bar", recording_bar)
    return opened


def test_dense_build_has_one_bar_over_all_chunks(bars, tmp_path, sample_dir, tiny_model):
    corpus = sample_dir / "collection.tsv"
    build_dense_index(corpus, tmp_path / "d", BiEncoder(tiny_model, device="cpu"), DenseBuildConfig(chunk_size=16))
    characters = sum(len(d.contents) for d in read_corpus(corpus))
    assert len(bars) == 1  # 80 documents in 5 chunks, one bar
    assert (bars[0].total, bars[0].n, bars[0].unit) == (characters, characters, "char")


def test_bm25_build_has_a_bar(bars, tmp_path, sample_dir):
    from rankkit.index.bm25 import build_bm25_index

    build_bm25_index(sample_dir / "collection.tsv", tmp_path / "b")
    assert [(b.total, b.n, b.unit) for b in bars] == [(80, 80, "doc")]


def test_corpus_size(sample_dir):
    docs = list(read_corpus(sample_dir / "collection.tsv"))
    assert progress_module.corpus_size(sample_dir / "collection.tsv", "tsv") == (
        len(docs),
        sum(len(d.contents) for d in docs),
    )
