"""Dense indexes on the bundled sample corpus with the tiny model: factory strings, round trip,
manifest, atomic builds, saved embeddings, model mismatch, determinism."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from rankkit.data.corpus import read_corpus
from rankkit.data.files import sha256_file
from rankkit.encode import BiEncoder, model_fingerprint
from rankkit.errors import RankkitError
from rankkit.index.dense import (
    DOCIDS_FILE,
    EMBEDDINGS_FILE,
    INDEX_FILE,
    DenseBuildConfig,
    DenseIndex,
    build_dense_index,
    load_embeddings,
    make_faiss_index,
)
from rankkit.index.manifest import MANIFEST, Manifest
from rankkit.retrieve.dense import DenseRetriever


@pytest.fixture(scope="module")
def corpus(sample_dir) -> Path:
    return sample_dir / "collection.tsv"


@pytest.fixture(scope="module")
def docs(corpus):
    return list(read_corpus(corpus))


@pytest.fixture(scope="module")
def encoder(tiny_model) -> BiEncoder:
    return BiEncoder(tiny_model, device="cpu")


@pytest.fixture(scope="module")
def flat_index(tmp_path_factory, corpus, encoder) -> Path:
    """A Flat index with its embeddings saved."""
    out = tmp_path_factory.mktemp("dense") / "sample-flat"
    build_dense_index(corpus, out, encoder, DenseBuildConfig(factory="Flat", save_embeddings=True))
    return out


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("factory", ["Flat", "HNSW32", "IVF4,Flat", "IVF4,PQ4x4", "PQ4x4"])
def test_build_with_factory(tmp_path, corpus, encoder, docs, factory):
    out = tmp_path / "index"
    manifest = build_dense_index(corpus, out, encoder, DenseBuildConfig(factory=factory))
    assert manifest.index_type == factory
    assert manifest.count == 80
    assert sorted(p.name for p in out.iterdir()) == sorted([MANIFEST, INDEX_FILE, DOCIDS_FILE])
    assert leftovers(tmp_path) == ["index"]  # no temporary folder beside it
    index = DenseIndex(out)
    assert index.index.ntotal == 80
    assert index.docids == [d.docid for d in docs]
    hits = index.search(encoder.encode(["how do stars form"]), 10)[0]
    assert len(hits) == 10
    assert len({h.docid for h in hits}) == 10
    assert all(h.docid in set(index.docids) for h in hits)
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)


def test_flat_round_trip_own_embedding_ranks_first(flat_index, encoder, docs):
    index = DenseIndex(flat_index)
    vectors = encoder.encode([d.contents for d in docs])
    results = index.search(vectors, 3)
    for doc, hits in zip(docs, results):
        assert hits[0].docid == doc.docid
        assert hits[0].score == pytest.approx(1.0, abs=1e-4)  # inner product of a unit vector with itself


def test_search_k_larger_than_index(flat_index, encoder):
    hits = DenseIndex(flat_index).search(encoder.encode(["moon"]), 500)[0]
    assert len(hits) == 80


def test_manifest_fields(flat_index, corpus, tiny_model):
    manifest = Manifest.read(flat_index)
    assert manifest.kind == "dense"
    assert manifest.count == 80
    assert manifest.dimension == 32
    assert manifest.metric == "ip"
    assert manifest.index_type == "Flat"
    assert manifest.model == str(tiny_model)
    assert manifest.model_fingerprint == model_fingerprint(tiny_model)
    assert manifest.pooling == "mean"
    assert manifest.normalized is True
    assert manifest.max_length == 64
    assert manifest.settings == {
        "seed": 0,
        "precision": "fp32",
        "search_params": {},
        "passage_prompt": "",
        "backend": "torch",
        "quantize": "none",
    }
    assert manifest.corpus.sha256 == sha256_file(corpus)
    assert manifest.corpus.format == "tsv"
    assert manifest.corpus.size_bytes == corpus.stat().st_size
    assert Path(manifest.corpus.path) == corpus.resolve()
    on_disk = json.loads((flat_index / MANIFEST).read_text())
    assert on_disk["kind"] == "dense" and on_disk["corpus"]["sha256"] == manifest.corpus.sha256


def test_saved_embeddings_match_the_encoder(flat_index, encoder, docs):
    vectors = load_embeddings(flat_index)
    assert vectors.shape == (80, 32)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, encoder.encode([d.contents for d in docs]), atol=1e-5)


def test_load_embeddings_without_saved_embeddings(tmp_path, corpus, encoder):
    out = tmp_path / "plain"
    build_dense_index(corpus, out, encoder)
    assert not (out / EMBEDDINGS_FILE).exists()
    with pytest.raises(RankkitError, match="--save-embeddings"):
        load_embeddings(out)


# --- atomic builds ---------------------------------------------------------------------------


def test_bad_factory_leaves_nothing(tmp_path, corpus, encoder):
    out = tmp_path / "indexes" / "bad"
    with pytest.raises(RankkitError, match="Fix:") as info:
        build_dense_index(corpus, out, encoder, DenseBuildConfig(factory="NoSuchIndex42"))
    assert "NoSuchIndex42" in str(info.value)
    assert not out.exists()
    assert leftovers(tmp_path / "indexes") == []


def _corpus_with_bad_line_at_end(tmp_path: Path, corpus: Path) -> Path:
    bad = tmp_path / "bad-corpus.tsv"
    bad.write_text(corpus.read_text(encoding="utf-8") + "this line has no tab separator\n", encoding="utf-8")
    return bad


def test_malformed_line_late_in_corpus_leaves_nothing(tmp_path, corpus, encoder):
    bad = _corpus_with_bad_line_at_end(tmp_path, corpus)
    root = tmp_path / "indexes"
    root.mkdir()
    # small chunks: several chunks are encoded and written before the bad line is read
    with pytest.raises(RankkitError, match="Fix:") as info:
        build_dense_index(bad, root / "broken", encoder, DenseBuildConfig(chunk_size=16, save_embeddings=True))
    assert f"{bad}:81" in str(info.value)  # names the file and line
    assert leftovers(root) == []


def test_failed_overwrite_keeps_the_old_index(tmp_path, corpus, encoder):
    bad = _corpus_with_bad_line_at_end(tmp_path, corpus)
    out = tmp_path / "indexes" / "idx"
    build_dense_index(corpus, out, encoder)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(RankkitError):
        build_dense_index(bad, out, encoder, overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert leftovers(tmp_path / "indexes") == ["idx"]


def test_empty_corpus_is_an_error_and_leaves_nothing(tmp_path, encoder):
    empty = tmp_path / "empty.tsv"
    empty.write_text("\n\n")
    root = tmp_path / "indexes"
    root.mkdir()
    with pytest.raises(RankkitError, match="Fix: give a corpus with at least one document"):
        build_dense_index(empty, root / "empty", encoder)
    assert leftovers(root) == []


def test_existing_folder_without_overwrite(tmp_path, corpus, encoder):
    out = tmp_path / "exists"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(RankkitError, match="overwrite"):
        build_dense_index(corpus, out, encoder)
    assert leftovers(out) == ["keep.txt"]
    assert leftovers(tmp_path) == ["exists"]


def test_overwrite_replaces_an_index(tmp_path, corpus, encoder):
    out = tmp_path / "idx"
    build_dense_index(corpus, out, encoder, DenseBuildConfig(factory="Flat"))
    manifest = build_dense_index(corpus, out, encoder, DenseBuildConfig(factory="HNSW32"), overwrite=True)
    assert Manifest.read(out).index_type == "HNSW32" == manifest.index_type
    assert leftovers(tmp_path) == ["idx"]


def test_dense_build_needs_a_model_or_embeddings(tmp_path, corpus):
    with pytest.raises(RankkitError, match="Fix:"):
        build_dense_index(corpus, tmp_path / "x", None)
    assert leftovers(tmp_path) == []


# --- reuse of saved embeddings ---------------------------------------------------------------


def test_embeddings_from_builds_another_type(tmp_path, flat_index, corpus, encoder, docs):
    hnsw = tmp_path / "hnsw"
    manifest = build_dense_index(
        corpus, hnsw, None, DenseBuildConfig(factory="HNSW32", save_embeddings=True), embeddings_from=flat_index
    )
    source = Manifest.read(flat_index)
    assert manifest.index_type == "HNSW32"
    assert manifest.count == 80
    for field in ("model", "model_fingerprint", "dimension", "pooling", "normalized", "max_length"):
        assert getattr(manifest, field) == getattr(source, field), field
    assert manifest.corpus.sha256 == source.corpus.sha256
    assert (hnsw / DOCIDS_FILE).read_text() == (flat_index / DOCIDS_FILE).read_text()
    np.testing.assert_array_equal(load_embeddings(hnsw), load_embeddings(flat_index))

    queries = encoder.encode(["how do stars form", "why does bread rise", "phases of the moon"])
    exact = DenseIndex(flat_index).search(queries, 10)
    approx = DenseIndex(hnsw, search_params={"efSearch": 256}).search(queries, 10)
    for a, b in zip(exact, approx):
        assert [h.docid for h in a] == [h.docid for h in b]
        np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=1e-5)


def test_embeddings_from_flat_equals_fresh_flat(tmp_path, flat_index, corpus, encoder):
    reused = tmp_path / "reused"
    build_dense_index(corpus, reused, None, DenseBuildConfig(factory="Flat"), embeddings_from=flat_index)
    assert not (reused / EMBEDDINGS_FILE).exists()
    queries = encoder.encode(["stars", "yeast", "moon"])
    assert DenseIndex(reused).search(queries, 20) == DenseIndex(flat_index).search(queries, 20)


def test_embeddings_from_a_different_corpus(tmp_path, flat_index, corpus):
    other = tmp_path / "other.tsv"
    other.write_text("\n".join(corpus.read_text(encoding="utf-8").splitlines()[:40]) + "\n", encoding="utf-8")
    with pytest.raises(RankkitError, match="Fix:") as info:
        build_dense_index(other, tmp_path / "x", None, embeddings_from=flat_index)
    assert "differs" in str(info.value)
    assert not (tmp_path / "x").exists()


def test_embeddings_from_index_without_embeddings(tmp_path, corpus, encoder):
    plain = tmp_path / "plain"
    build_dense_index(corpus, plain, encoder)
    with pytest.raises(RankkitError, match="save-embeddings"):
        build_dense_index(corpus, tmp_path / "x", None, embeddings_from=plain)
    assert leftovers(tmp_path) == ["plain"]


# --- FAISS training and search parameters ----------------------------------------------------


@pytest.mark.parametrize("factory", ["IVF256,Flat", "IVF4,PQ4"])  # 256 centroids > 80 vectors
def test_too_few_vectors_to_train(tmp_path, corpus, encoder, factory):
    with pytest.raises(RankkitError, match="Fix:") as info:
        build_dense_index(corpus, tmp_path / "ivf", encoder, DenseBuildConfig(factory=factory))
    assert "80 vectors" in str(info.value)
    assert leftovers(tmp_path) == []


def test_make_faiss_index_holds_every_vector_and_searches_by_inner_product():
    vectors = np.random.default_rng(0).standard_normal((300, 16)).astype(np.float32)
    index = make_faiss_index(vectors, "IVF4,Flat", seed=0)
    assert index.ntotal == 300 and index.is_trained
    index.nprobe = 4  # every list: exact
    scores, ids = index.search(vectors[:3], 1)
    exact = vectors[:3] @ vectors.T
    assert ids[:, 0].tolist() == exact.argmax(axis=1).tolist()
    assert np.allclose(scores[:, 0], exact.max(axis=1), rtol=1e-5)


def test_make_faiss_index_names_an_unknown_factory():
    with pytest.raises(RankkitError, match="FAISS cannot build 'Nonsense7'.*Fix"):
        make_faiss_index(np.zeros((10, 4), dtype=np.float32), "Nonsense7", seed=0)


def test_unknown_search_parameter(flat_index):
    with pytest.raises(RankkitError, match="Fix:"):
        DenseIndex(flat_index, search_params={"nprobe": 4})


def test_ivf_nprobe_all_lists_is_exact(tmp_path, flat_index, corpus, encoder):
    ivf = tmp_path / "ivf"
    build_dense_index(corpus, ivf, None, DenseBuildConfig(factory="IVF4,Flat"), embeddings_from=flat_index)
    queries = encoder.encode(["stars", "bread"])
    exact = DenseIndex(flat_index).search(queries, 10)
    probed = DenseIndex(ivf, search_params={"nprobe": 4}).search(queries, 10)
    assert [[h.docid for h in hits] for hits in probed] == [[h.docid for h in hits] for hits in exact]


@pytest.mark.parametrize("factory", ["IVF4,Flat", "HNSW32", "IVF4,PQ4x4"])
def test_same_seed_gives_same_index(tmp_path, flat_index, corpus, encoder, docs, factory):
    results = []
    for name in ("a", "b"):
        out = tmp_path / name
        build_dense_index(corpus, out, None, DenseBuildConfig(factory=factory, seed=7), embeddings_from=flat_index)
        queries = encoder.encode([d.contents for d in docs[:20]] + ["how do stars form"])
        results.append(DenseIndex(out).search(queries, 10))
    assert results[0] == results[1]


def test_dense_index_refuses_a_bm25_manifest(tmp_path, flat_index):
    folder = tmp_path / "fake-bm25"
    shutil.copytree(flat_index, folder)
    data = json.loads((folder / MANIFEST).read_text())
    data["kind"] = "bm25"
    (folder / MANIFEST).write_text(json.dumps(data))
    with pytest.raises(RankkitError, match="not a dense"):
        DenseIndex(folder)


def test_folder_without_manifest(tmp_path):
    with pytest.raises(RankkitError, match="Fix:"):
        DenseIndex(tmp_path)


def test_unreadable_manifest(tmp_path, flat_index):
    folder = tmp_path / "broken"
    shutil.copytree(flat_index, folder)
    (folder / MANIFEST).write_text("{not json")
    with pytest.raises(RankkitError, match="rebuild"):
        DenseIndex(folder)


# --- model mismatch --------------------------------------------------------------------------


def test_other_model_on_index_is_refused(flat_index, tiny_model, other_tiny_model):
    with pytest.raises(RankkitError) as info:
        DenseRetriever.from_folder(flat_index, model=str(other_tiny_model), device="cpu")
    message = str(info.value)
    assert str(tiny_model) in message  # names the index's model
    assert str(other_tiny_model) in message
    assert f"Fix: search with --model {tiny_model}" in message


def test_same_weights_with_another_config_are_refused(tmp_path, flat_index, tiny_model):
    """Same dimension, different pooling config: a different model as far as the index goes."""
    cls_model = tmp_path / "cls-model"
    shutil.copytree(tiny_model, cls_model)
    pooling = json.loads((cls_model / "1_Pooling" / "config.json").read_text())
    pooling.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    (cls_model / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    with pytest.raises(RankkitError, match="Fix:"):
        DenseRetriever.from_folder(flat_index, model=str(cls_model), device="cpu")


def test_copy_of_the_model_is_accepted(tmp_path, flat_index, tiny_model):
    copy = tmp_path / "copied-model"
    shutil.copytree(tiny_model, copy)
    retriever = DenseRetriever.from_folder(flat_index, model=str(copy), device="cpu")
    assert len(retriever.search("stars", 5)) == 5


def _with_irds_corpus(flat_index: Path, folder: Path, dataset: str) -> Path:
    """A copy of the index whose manifest says it was built on `irds:<dataset>` (no checksum)."""
    shutil.copytree(flat_index, folder)
    data = json.loads((folder / MANIFEST).read_text())
    data["corpus"].update(path=f"irds:{dataset}", sha256="", size_bytes=0)
    (folder / MANIFEST).write_text(json.dumps(data))
    return folder


def test_embeddings_from_another_irds_dataset_is_refused(tmp_path, flat_index):
    """ir_datasets corpora have no checksum: once any two of them passed the same-corpus check."""
    source = _with_irds_corpus(flat_index, tmp_path / "source", "msmarco-passage")
    with pytest.raises(RankkitError, match="differs"):
        build_dense_index("irds:beir/scifact", tmp_path / "x", None, embeddings_from=source)
    assert not (tmp_path / "x").exists()
    manifest = build_dense_index(
        "irds:msmarco-passage", tmp_path / "y", None, DenseBuildConfig(factory="HNSW32"), embeddings_from=source
    )
    assert manifest.corpus.path == "irds:msmarco-passage" and manifest.count == 80
