"""Dense and hybrid retrieval on the sample corpus with the tiny model: search vs batch_search,
argument checks, reciprocal rank fusion, open_retriever."""

from __future__ import annotations

from pathlib import Path

import pytest

from rankkit.data.queries import read_queries
from rankkit.data.runs import Hit
from rankkit.encode import BiEncoder
from rankkit.errors import RankkitError
from rankkit.index.dense import DenseBuildConfig, DenseIndex, build_dense_index
from rankkit.retrieve import HybridRetriever, Retriever, open_retriever, rrf_fuse
from rankkit.retrieve.base import MAX_K
from rankkit.retrieve.dense import DenseRetriever
from rankkit.retrieve.fusion import FusionConfig
from rankkit.retrieve.options import DenseQuery

CPU = DenseQuery(device="cpu")


@pytest.fixture(scope="module")
def encoder(tiny_model) -> BiEncoder:
    return BiEncoder(tiny_model, device="cpu")


@pytest.fixture(scope="module")
def indexes(tmp_path_factory, sample_dir, encoder) -> tuple[Path, Path]:
    """A Flat and an HNSW index of the sample corpus, both built by the tiny model."""
    root = tmp_path_factory.mktemp("retrieve")
    corpus = sample_dir / "collection.tsv"
    build_dense_index(corpus, root / "flat", encoder, DenseBuildConfig(factory="Flat", save_embeddings=True))
    build_dense_index(corpus, root / "hnsw", None, DenseBuildConfig(factory="HNSW32"), embeddings_from=root / "flat")
    return root / "flat", root / "hnsw"


@pytest.fixture(scope="module")
def dense(indexes, encoder) -> DenseRetriever:
    return DenseRetriever(DenseIndex(indexes[0]), encoder, batch_size=5)  # small batches: several chunks


@pytest.fixture(scope="module")
def queries(sample_dir) -> dict[str, str]:
    return read_queries(sample_dir / "queries.tsv")


def test_search_returns_k_hits_best_first(dense):
    hits = dense.search("how do stars form", 7)
    assert len(hits) == 7
    assert all(isinstance(h, Hit) and isinstance(h.score, float) for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert len({h.docid for h in hits}) == 7


def test_batch_search_equals_search(dense, queries):
    run = dense.batch_search(queries, 10)
    assert list(run) == list(queries)
    for qid, text in queries.items():
        single = dense.search(text, 10)
        assert [h.docid for h in run[qid]] == [h.docid for h in single]
        assert [h.score for h in run[qid]] == pytest.approx([h.score for h in single], abs=1e-5)


def test_batch_search_of_no_queries(dense):
    assert dense.batch_search({}, 10) == {}


def test_whitespace_is_collapsed(dense):
    assert dense.search("  how   do\tstars  form ", 5) == dense.search("how do stars form", 5)


def test_k_larger_than_corpus(dense):
    assert len(dense.search("moon", MAX_K)) == 80


@pytest.mark.parametrize("k", [0, -1, MAX_K + 1])
def test_k_out_of_range(dense, k):
    with pytest.raises(RankkitError, match="Fix:"):
        dense.search("stars", k)
    with pytest.raises(RankkitError, match="Fix:"):
        dense.batch_search({"q": "stars"}, k)


@pytest.mark.parametrize("query", ["", "   ", "\t \n"])
def test_empty_query(dense, query):
    with pytest.raises(RankkitError, match="empty"):
        dense.search(query, 10)
    with pytest.raises(RankkitError, match="empty"):
        dense.batch_search({"q1": "stars", "q2": query}, 10)


def test_retrievers_follow_the_protocol(dense, indexes):
    assert isinstance(dense, Retriever)
    assert isinstance(open_retriever(list(indexes), CPU), Retriever)


# --- reciprocal rank fusion ------------------------------------------------------------------


def test_rrf_fuse_hand_computed():
    a = [Hit("d1", 9.0), Hit("d2", 8.0), Hit("d3", 7.0)]
    b = [Hit("d3", 0.9), Hit("d1", 0.5)]
    fused = rrf_fuse([a, b], [1.0, 2.0], k=10, rrf_k=60)
    expected = {"d1": 1 / 61 + 2 / 62, "d2": 1 / 62, "d3": 1 / 63 + 2 / 61}
    assert [h.docid for h in fused] == ["d3", "d1", "d2"]
    for hit in fused:
        assert hit.score == pytest.approx(expected[hit.docid])
    assert [h.docid for h in rrf_fuse([a, b], [1.0, 2.0], k=2)] == ["d3", "d1"]


def test_rrf_fuse_ties_broken_by_docid():
    fused = rrf_fuse([[Hit("b", 1.0)], [Hit("a", 1.0)]], [1.0, 1.0], k=10)
    assert [h.docid for h in fused] == ["a", "b"]


def test_hybrid_of_two_dense_indexes(indexes, encoder, dense):
    flat = DenseRetriever(DenseIndex(indexes[0]), encoder)
    hnsw = DenseRetriever(DenseIndex(indexes[1], search_params={"efSearch": 256}), encoder)
    hybrid = HybridRetriever([flat, hnsw], config=FusionConfig(method="rrf"))
    assert hybrid.name == f"hybrid:{flat.name}+{hnsw.name}"
    fused = hybrid.search("how do stars form", 10)
    single = flat.search("how do stars form", 10)
    # both rank alike, so the fused ranking is theirs and each score is 2 / (60 + rank)
    assert [h.docid for h in fused] == [h.docid for h in single]
    assert [h.score for h in fused] == pytest.approx([2 / (60 + r) for r in range(1, 11)])


def test_hybrid_weights_change_the_fusion(indexes, encoder):
    flat = DenseRetriever(DenseIndex(indexes[0]), encoder)
    hybrid = HybridRetriever([flat, flat], weights=[0.5, 0.25], config=FusionConfig(method="rrf", depth=20))
    hits = hybrid.search("moon", 3)
    assert [h.score for h in hits] == pytest.approx([0.75 / 61, 0.75 / 62, 0.75 / 63])


def test_hybrid_batch_search_equals_search(indexes, queries):
    hybrid = open_retriever(list(indexes), CPU)
    run = hybrid.batch_search(queries, 10)
    assert list(run) == list(queries)
    for qid, text in queries.items():
        # the dense side encodes a query alone or within a batch: float noise, as in the dense test
        # above, which z-scores (fused scores of about 2 to 6) scale up to ~2e-5
        single = hybrid.search(text, 10)
        assert [h.docid for h in run[qid]] == [h.docid for h in single]
        assert [h.score for h in run[qid]] == pytest.approx([h.score for h in single], rel=1e-5, abs=1e-5)


def test_hybrid_checks_k_and_queries(indexes):
    hybrid = open_retriever(list(indexes), CPU)
    with pytest.raises(RankkitError, match="Fix:"):
        hybrid.search("stars", 0)
    with pytest.raises(RankkitError, match="Fix:"):
        hybrid.batch_search({"q": "stars"}, MAX_K + 1)
    with pytest.raises(RankkitError, match="empty"):
        hybrid.search(" ", 10)


@pytest.mark.parametrize("weights", [[1.0], [1.0, 1.0, 1.0]])
def test_hybrid_weights_length_mismatch(dense, weights):
    with pytest.raises(RankkitError, match="Fix: pass one --weight per --index"):
        HybridRetriever([dense, dense], weights=weights)


def test_hybrid_needs_two_retrievers(dense):
    with pytest.raises(RankkitError, match="Fix:"):
        HybridRetriever([dense])


# --- open_retriever --------------------------------------------------------------------------


def test_open_retriever_one_dense_folder(indexes, tiny_model):
    retriever = open_retriever([indexes[0]], CPU)
    assert isinstance(retriever, DenseRetriever)
    assert retriever.encoder.fingerprint == retriever.index.manifest.model_fingerprint
    assert retriever.encoder.name == str(tiny_model)  # the model named in the manifest


def test_open_retriever_several_folders_is_hybrid(indexes):
    retriever = open_retriever(list(indexes), CPU, weights=[2.0, 1.0])
    assert isinstance(retriever, HybridRetriever)
    assert all(isinstance(r, DenseRetriever) for r in retriever.retrievers)
    assert retriever.weights == [2.0, 1.0]


def test_open_retriever_weights_mismatch(indexes):
    with pytest.raises(RankkitError, match="weight"):
        open_retriever(list(indexes), CPU, weights=[1.0])


def test_open_retriever_mismatched_model(indexes, other_tiny_model):
    with pytest.raises(RankkitError, match="Fix: search with --model"):
        open_retriever([indexes[0]], DenseQuery(model=str(other_tiny_model), device="cpu"))


def test_open_retriever_not_an_index(tmp_path):
    with pytest.raises(RankkitError, match="not a rankkit index"):
        open_retriever([tmp_path], CPU)
