"""No silent NaN: a non-finite vector (NaN, +inf, -inf) is never found by search, so its document
would be lost without a word. Wherever vectors enter an index (the model's output, a saved
embeddings file reused by --embeddings-from or a merge, the vectors an index stores), a non-finite
value is refused naming the document, or caught by `index verify`; a changed embeddings file is
refused by its checksum before it is reused."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Callable, Sequence

import faiss
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rankkit.encode.backend import Runner
from rankkit.errors import RankkitError
from rankkit.index.dense import (
    DOCIDS_FILE,
    EMBEDDINGS_FILE,
    INDEX_FILE,
    DenseBuildConfig,
    build_dense_index,
)
from rankkit.index.manifest import Manifest, Shard
from rankkit.index.shards import build_dense_shard, merge_dense_shards
from rankkit.index.verify import verify

DOCUMENTS = 12
DIMENSION = 8
POISON = st.sampled_from([np.nan, np.inf, -np.inf])
PLACES = {"row": st.integers(0, DOCUMENTS - 1), "column": st.integers(0, DIMENSION - 1), "value": POISON}
SETTINGS = settings(max_examples=20, deadline=None)


class RandomEncoder:
    """A bi-encoder stand-in: a fixed random vector per text, `poison` applied to the output."""

    name, fingerprint, dimension, pooling_mode = "random", "0" * 16, DIMENSION, "mean"
    normalized, max_length, precision, prompts = True, 32, "fp32", {"query": "", "passage": ""}

    def __init__(self, poison: Callable[[np.ndarray, Sequence[str]], None] = lambda vectors, texts: None):
        self.poison = poison
        self.runner = Runner(forward=lambda inputs: None)  # what the manifest records: PyTorch

    def encode(self, texts: Sequence[str], on_batch=None, **_: object) -> np.ndarray:
        vectors = np.stack(
            [np.random.default_rng(abs(hash(text)) % 2**32).standard_normal(DIMENSION) for text in texts]
        ).astype(np.float32)
        self.poison(vectors, texts)
        if on_batch is not None:
            on_batch(range(len(texts)))
        return vectors


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("nonfinite") / "collection.tsv"
    path.write_text("".join(f"d{i}\tpassage number {i} about topic {i % 3}\n" for i in range(DOCUMENTS)))
    return path


@pytest.fixture(scope="module")
def saved(corpus, tmp_path_factory) -> Path:
    """A good index with its embeddings saved."""
    out = tmp_path_factory.mktemp("nonfinite") / "saved"
    build_dense_index(corpus, out, RandomEncoder(), DenseBuildConfig(save_embeddings=True))  # type: ignore[arg-type]
    return out


def _poison_file(path: Path, row: int, column: int, value: float) -> None:
    vectors = np.fromfile(path, dtype=np.float32).reshape(DOCUMENTS, DIMENSION)
    vectors[row, column] = value
    vectors.tofile(path)


def _copy(folder: Path, into: Path) -> Path:
    return Path(shutil.copytree(folder, into / folder.name))


@SETTINGS
@given(**PLACES)
def test_a_model_output_with_a_non_finite_value_is_refused_naming_the_document(corpus, row, column, value):
    def poison(vectors: np.ndarray, texts: Sequence[str]) -> None:
        if f"passage number {row} " in " ".join(texts):
            vectors[[i for i, t in enumerate(texts) if t.startswith(f"passage number {row} ")][0], column] = value

    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "index"
        with pytest.raises(RankkitError, match=rf"{corpus}: the model random gave a non-finite vector .*'d{row}'.*Fix"):
            build_dense_index(corpus, out, RandomEncoder(poison), DenseBuildConfig(chunk_size=5))  # type: ignore[arg-type]
        assert not out.exists() and not list(Path(scratch).iterdir())  # nothing half-written is left
        with pytest.raises(RankkitError, match=rf"'d{row}'"):  # a shard's encoding too
            build_dense_shard(corpus, Path(scratch) / "shard", RandomEncoder(poison), Shard(0, 1))  # type: ignore[arg-type]


@SETTINGS
@given(**PLACES)
def test_a_changed_embeddings_file_is_refused_by_its_checksum_before_reuse(corpus, saved, row, column, value):
    with tempfile.TemporaryDirectory() as scratch:
        source = _copy(saved, Path(scratch))
        _poison_file(source / EMBEDDINGS_FILE, row, column, value)
        with pytest.raises(RankkitError, match=f"{EMBEDDINGS_FILE}: its SHA-256 differs.*Fix: rebuild"):
            build_dense_index(corpus, Path(scratch) / "rebuilt", None, embeddings_from=source)
        with pytest.raises(RankkitError, match="SHA-256 differs"):
            verify(source)
        assert not (Path(scratch) / "rebuilt").exists()


@SETTINGS
@given(**PLACES)
def test_a_recorded_non_finite_embeddings_file_is_refused_on_reuse_and_caught_by_verify(
    corpus, saved, row, column, value
):
    with tempfile.TemporaryDirectory() as scratch:
        source = _copy(saved, Path(scratch))
        _poison_file(source / EMBEDDINGS_FILE, row, column, value)
        Manifest.read(source).write(source)  # its checksum recorded: only the values betray it
        problem = rf"{EMBEDDINGS_FILE}: vector {row} \(document 'd{row}'\) is not finite.*Fix: rebuild"
        with pytest.raises(RankkitError, match=problem):
            build_dense_index(corpus, Path(scratch) / "rebuilt", None, embeddings_from=source)
        with pytest.raises(RankkitError, match=problem):
            verify(source)


@SETTINGS
@given(factory=st.sampled_from(["Flat", "HNSW4"]), **PLACES)
def test_non_finite_vectors_stored_in_the_faiss_index_are_caught_by_verify(saved, factory, row, column, value):
    with tempfile.TemporaryDirectory() as scratch:
        folder = _copy(saved, Path(scratch))
        vectors = np.fromfile(folder / EMBEDDINGS_FILE, dtype=np.float32).reshape(DOCUMENTS, DIMENSION)
        vectors[row, column] = value
        index = faiss.index_factory(DIMENSION, factory, faiss.METRIC_INNER_PRODUCT)
        index.add(vectors)
        faiss.write_index(index, str(folder / INDEX_FILE))
        (folder / EMBEDDINGS_FILE).unlink()
        Manifest.read(folder).write(folder)  # a consistent manifest over the damaged index
        with pytest.raises(RankkitError, match=rf"{INDEX_FILE}: vector {row} \(document 'd{row}'\) is not finite"):
            verify(folder)


@SETTINGS
@given(**PLACES)
def test_a_shard_with_non_finite_vectors_is_refused_by_merge_and_caught_by_verify(corpus, row, column, value):
    with tempfile.TemporaryDirectory() as scratch:
        shard = Path(scratch) / "shard"
        build_dense_shard(corpus, shard, RandomEncoder(), Shard(0, 1))  # type: ignore[arg-type]
        _poison_file(shard / EMBEDDINGS_FILE, row, column, value)
        with pytest.raises(RankkitError, match=f"{EMBEDDINGS_FILE}: its SHA-256 differs"):
            merge_dense_shards([shard], Path(scratch) / "merged")
        Manifest.read(shard).write(shard)
        for check in (lambda: merge_dense_shards([shard], Path(scratch) / "merged"), lambda: verify(shard)):
            with pytest.raises(RankkitError, match=rf"vector {row} \(document 'd{row}'\) is not finite"):
                check()
        assert not (Path(scratch) / "merged").exists()


def test_a_good_index_passes_verify_with_every_vector_checked(corpus, saved, tmp_path):
    assert verify(saved).notes == []
    ivf = tmp_path / "ivf"
    build_dense_index(corpus, ivf, RandomEncoder(), DenseBuildConfig(factory="IVF2,Flat"))  # type: ignore[arg-type]
    assert verify(ivf).notes == []  # IVF vectors are decoded through the direct map
    assert (saved / DOCIDS_FILE).read_text().splitlines()[0] == "d0"
