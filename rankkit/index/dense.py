"""Dense indexes: corpus embeddings in a FAISS index chosen by a factory string.

An index folder holds manifest.json, index.faiss, docids.txt (row i of the index is line i) and,
when asked, embeddings.f32 (float32, row-major, [count, dimension]) so another index type can be
built from the same embeddings without re-encoding.
"""

from __future__ import annotations

import contextlib
import shutil
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Iterator

import faiss
import numpy as np

from rankkit.data.corpus import CorpusFormat, corpus_format, document_chunks, read_corpus_rows
from rankkit.data.files import atomic_dir
from rankkit.data.runs import Hit
from rankkit.encode.biencoder import BiEncoder
from rankkit.errors import RankkitError
from rankkit.index.faiss_device import GpuOptions, to_cpu, to_search_device
from rankkit.index.integrity import (
    VECTOR_CHUNK,
    check_checksums,
    check_count,
    check_finite,
    check_sizes,
    first_non_finite,
    index_error,
    row_chunks,
)
from rankkit.index.manifest import SHARD_KIND, CorpusInfo, Manifest, is_index_folder
from rankkit.index.progress import corpus_bar, corpus_size

INDEX_FILE = "index.faiss"
DOCIDS_FILE = "docids.txt"
EMBEDDINGS_FILE = "embeddings.f32"
MAX_TRAINING_VECTORS = 100_000
# the knob of each ANN family, as FAISS's ParameterSpace names it, with the CLI flag that sets it
SEARCH_PARAMETERS = {"nprobe": "--nprobe", "efSearch": "--ef-search"}
TUNING_TARGET_RECALL = 0.95
TUNING_DEPTH = 100
TUNING_QUERIES = 500


# Hit(docid, score) runs NamedTuple's __new__, a Python function: on HNSW it made DenseIndex.search
# 15-20% slower than FAISS plus a docid lookup. tuple.__new__ builds the same Hit in C.
_new_hit = partial(tuple.__new__, Hit)


class FewerHitsWarning(UserWarning):
    """An approximate index returned fewer hits than asked for some queries."""


@dataclass(frozen=True)
class DenseBuildConfig:
    factory: str = "Flat"
    chunk_size: int = 20_000  # documents encoded per chunk: bounds memory on large corpora
    save_embeddings: bool = False
    seed: int = 0


def encode_corpus(
    corpus: str | Path, fmt: CorpusFormat, encoder: BiEncoder, folder: Path, chunk_size: int, rows: range | None = None
) -> int:
    """Encode the corpus (or only its documents at positions `rows`) chunk by chunk into
    embeddings.f32 and docids.txt, under one progress bar over their characters (time per chunk
    follows its text length, not its document count). A non-finite vector is refused, naming its
    document: search would never return it."""
    count = 0
    with (
        open(folder / EMBEDDINGS_FILE, "wb") as vectors,
        open(folder / DOCIDS_FILE, "w", encoding="utf-8") as ids,
        corpus_bar(corpus_size(corpus, fmt, rows)[1], "encoding corpus", "char") as progress,
    ):
        for chunk in document_chunks(read_corpus_rows(corpus, fmt, rows, word_ids=True), chunk_size):
            if any("\n" in d.docid for d in chunk):
                raise RankkitError("a docid contains a newline. Fix: use single-line document ids")
            texts = [d.contents for d in chunk]
            embeddings = encoder.encode(
                texts, on_batch=lambda batch: progress.update(sum(len(texts[i]) for i in batch))
            )
            bad = first_non_finite(embeddings)
            if bad is not None:
                raise _non_finite_output(corpus, encoder, chunk[bad].docid)
            vectors.write(embeddings.tobytes())
            ids.writelines(f"{d.docid}\n" for d in chunk)
            count += len(chunk)
    return count


def _non_finite_output(corpus: str | Path, encoder: BiEncoder, docid: str) -> RankkitError:
    fp32 = "" if encoder.precision == "fp32" else "; if it holds in fp32, encode with --precision fp32"
    return RankkitError(
        f"{corpus}: the model {encoder.name} gave a non-finite vector (NaN or infinity) for document "
        f"{docid!r}, which search would never return. Fix: use a model whose outputs are finite (damaged "
        f"or diverged weights give NaN: re-download or retrain it){fp32}"
    )


def load_embeddings(folder: str | Path) -> np.ndarray:
    """The saved embeddings of an index or shard, memory-mapped read-only, for reuse: only once
    they and the docids have the SHA-256 the manifest records and every vector is finite."""
    manifest = Manifest.read(folder)
    check_sizes(folder, manifest)
    path = Path(folder) / EMBEDDINGS_FILE
    if not path.is_file():
        raise RankkitError(f"{folder}: no saved embeddings. Fix: rebuild it with --save-embeddings")
    check_checksums(folder, manifest, (EMBEDDINGS_FILE, DOCIDS_FILE))
    vectors = np.memmap(path, dtype=np.float32, mode="r", shape=(manifest.count, manifest.dimension))
    check_finite(folder, manifest, EMBEDDINGS_FILE, row_chunks(vectors))
    return vectors


def _faiss_vectors(index: faiss.Index) -> Iterator[np.ndarray]:
    """The vectors a FAISS index stores (decoded), a chunk at a time."""
    with contextlib.suppress(RuntimeError):  # an IVF index reconstructs by id only through its direct map
        faiss.extract_index_ivf(index).make_direct_map()
    for start in range(0, index.ntotal, VECTOR_CHUNK):
        yield index.reconstruct_n(start, min(VECTOR_CHUNK, index.ntotal - start))


def check_stored_vectors(folder: str | Path, manifest: Manifest) -> list[str]:
    """Every vector the folder stores (embeddings.f32, and index.faiss's as FAISS decodes them) is
    finite; returns notes on what could not be checked."""
    folder = Path(folder)
    if (folder / EMBEDDINGS_FILE).is_file():
        shape = (manifest.count, manifest.dimension)
        vectors = np.memmap(folder / EMBEDDINGS_FILE, dtype=np.float32, mode="r", shape=shape)
        check_finite(folder, manifest, EMBEDDINGS_FILE, row_chunks(vectors))
    if manifest.kind != "dense":
        return []
    index = faiss.read_index(str(folder / INDEX_FILE), faiss.IO_FLAG_READ_ONLY)
    try:
        check_finite(folder, manifest, INDEX_FILE, _faiss_vectors(index))
    except RuntimeError as exc:  # an index type that cannot decode its vectors
        reason = str(exc).strip().splitlines()[-1][:120] if str(exc).strip() else type(exc).__name__
        return [
            f"{INDEX_FILE}: its vectors were not checked for NaN ({manifest.index_type} cannot decode them: {reason})"
        ]
    return []


def search_parameter(index: faiss.Index) -> str | None:
    """The index's speed/recall knob: nprobe for IVF indexes, efSearch for HNSW, None for exact ones."""
    try:
        faiss.extract_index_ivf(index)
        return "nprobe"
    except RuntimeError:
        pass
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexPreTransform) else index
    return "efSearch" if hasattr(inner, "hnsw") else None


def set_search_params(index: faiss.Index, params: dict[str, int], where: str | Path) -> None:
    """Set search parameters through FAISS's ParameterSpace (GpuParameterSpace for a GPU index)."""
    space = faiss.GpuParameterSpace() if "Gpu" in type(index).__name__ else faiss.ParameterSpace()
    for name, value in params.items():
        try:
            space.set_index_parameter(index, name, value)
        except RuntimeError:
            knob = search_parameter(index)
            fix = f"use {SEARCH_PARAMETERS[knob]} for this index" if knob else "this index is exact: drop the option"
            raise RankkitError(f"{where}: the index has no search parameter {name!r}. Fix: {fix}") from None


def tune_search_params(
    index: faiss.Index, vectors: np.ndarray, seed: int, target: float = TUNING_TARGET_RECALL, depth: int = TUNING_DEPTH
) -> dict[str, int]:
    """The smallest nprobe / efSearch (powers of two) at which the index's top `depth` for sampled
    corpus vectors, used as queries, holds at least `target` of the exact top `depth`; {} for exact
    indexes. Recorded in the manifest as the default search setting."""
    name = search_parameter(index)
    if name is None:
        return {}
    rows = np.sort(np.random.default_rng(seed).permutation(len(vectors))[:TUNING_QUERIES])
    queries = np.ascontiguousarray(vectors[rows])
    depth = min(depth, len(vectors))
    truth = faiss.knn(queries, vectors, depth, metric=faiss.METRIC_INNER_PRODUCT)[1]  # exact, reads the memmap in place
    limit = faiss.extract_index_ivf(index).nlist if name == "nprobe" else 4096
    value = 1 if name == "nprobe" else 16
    while True:
        set_search_params(index, {name: value}, "tuning")
        found = index.search(queries, depth)[1]
        recall = np.mean([len(np.intersect1d(f, t)) / depth for f, t in zip(found, truth)])
        if recall >= target or value >= limit:
            return {name: value}
        value = min(2 * value, limit)


def make_faiss_index(vectors: np.ndarray, factory: str, seed: int) -> faiss.Index:
    """An inner-product FAISS index from a factory string, trained (on the GPU when there is one) on at
    most MAX_TRAINING_VECTORS rows drawn with `seed`, holding every vector, returned on the CPU."""
    count, dimension = vectors.shape
    try:
        index = faiss.index_factory(dimension, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise RankkitError(
            f"FAISS cannot build {factory!r} ({str(exc).strip().splitlines()[-1]}). "
            "Fix: use a factory string such as Flat, HNSW32 or IVF256,PQ32"
        ) from None
    index = to_search_device(index)
    if not index.is_trained:
        rows = np.random.default_rng(seed).permutation(count)[:MAX_TRAINING_VECTORS]
        try:
            index.train(np.ascontiguousarray(vectors[np.sort(rows)]))
        except RuntimeError as exc:
            raise RankkitError(
                f"FAISS could not train {factory!r} on {count} vectors ({str(exc).strip()[:200]}). "
                "Fix: use fewer IVF lists or PQ centroids for a corpus this size, or Flat"
            ) from None
    for start in range(0, count, 50_000):
        index.add(np.ascontiguousarray(vectors[start : start + 50_000]))
    return to_cpu(index)


def _query_model(encoder: BiEncoder, query_encoder: BiEncoder | None) -> dict:
    """Manifest fields of a declared query tower, after checking it fits the passage tower."""
    if query_encoder is None:
        return {}
    if query_encoder.dimension != encoder.dimension:
        raise RankkitError(
            f"query model {query_encoder.name!r} gives {query_encoder.dimension} dimensions, the "
            f"passage model {encoder.name!r} {encoder.dimension}. Fix: pair towers of one dimension"
        )
    return dict(query_model=query_encoder.name, query_model_fingerprint=query_encoder.fingerprint)


# the settings of how passages were encoded, carried over when saved vectors are reused or merged
ENCODING_SETTINGS = ("precision", "passage_prompt", "backend", "quantize", "agreement")


def encoder_fields(encoder: BiEncoder, query_encoder: BiEncoder | None) -> tuple[dict, dict]:
    """The manifest fields (model, dimension, pooling, ...) and encoding settings (precision,
    passage prompt) of vectors `encoder` computes; the towers are checked before any encoding."""
    model = dict(
        model=encoder.name,
        model_fingerprint=encoder.fingerprint,
        dimension=encoder.dimension,
        pooling=encoder.pooling_mode,
        normalized=encoder.normalized,
        max_length=encoder.max_length,
        **_query_model(encoder, query_encoder),
    )
    return model, {
        "precision": encoder.precision,
        "passage_prompt": encoder.prompts["passage"],
        **encoder.runner.describe(),
    }


def source_fields(source: Manifest) -> tuple[dict, dict]:
    """The same fields, taken from the manifest of the folder whose saved vectors are reused."""
    model = dict(
        model=source.model,
        model_fingerprint=source.model_fingerprint,
        dimension=source.dimension,
        pooling=source.pooling,
        normalized=source.normalized,
        max_length=source.max_length,
        query_model=source.query_model,
        query_model_fingerprint=source.query_model_fingerprint,
    )
    encoding = {key: source.settings[key] for key in ENCODING_SETTINGS if key in source.settings}
    return model, {"precision": "fp32", **encoding}


def same_corpus(a: CorpusInfo, b: CorpusInfo) -> bool:
    """Same checksum; ir_datasets corpora carry none, so there the dataset id must match."""
    return (a.sha256, a.sha256 or a.path) == (b.sha256, b.sha256 or b.path)


def write_dense_index(
    folder: Path, vectors: np.ndarray, corpus_info: CorpusInfo, model: dict, encoding: dict, config: DenseBuildConfig
) -> Manifest:
    """Index `vectors` (row i is line i of the folder's docids.txt) with `config.factory`, tune its
    search setting, and write index.faiss and the manifest into `folder`; a folder's embeddings.f32
    is kept only with `config.save_embeddings`. The one ending of every dense build (from a corpus,
    from saved embeddings, from merged shards), so each gives the same index from the same vectors."""
    index = make_faiss_index(vectors, config.factory, config.seed)
    search_params = tune_search_params(index, vectors, config.seed)
    faiss.write_index(index, str(folder / INDEX_FILE))
    if not config.save_embeddings:
        (folder / EMBEDDINGS_FILE).unlink(missing_ok=True)
    manifest = Manifest(
        kind="dense",
        count=index.ntotal,
        corpus=corpus_info,
        index_type=config.factory,
        metric="ip",
        settings={"seed": config.seed, "search_params": search_params, **encoding},
        **model,
    )
    return manifest.write(folder)


def build_dense_index(
    corpus: str | Path,
    out: str | Path,
    encoder: BiEncoder | None,
    config: DenseBuildConfig = DenseBuildConfig(),
    fmt: CorpusFormat | None = None,
    embeddings_from: str | Path | None = None,
    overwrite: bool = False,
    query_encoder: BiEncoder | None = None,
) -> Manifest:
    """Encode `corpus` (or reuse the embeddings saved in the index `embeddings_from`) and write a
    dense index folder to `out` atomically. Returns its manifest.

    `query_encoder` declares a two-tower model (DPR / Tevatron style): queries are encoded by it,
    passages by `encoder`; the manifest records both."""
    fmt = fmt or corpus_format(corpus)
    corpus_info = CorpusInfo.of(corpus, fmt)
    with atomic_dir(out, overwrite=overwrite, replaceable=is_index_folder, what="a rankkit index") as folder:
        if embeddings_from is not None:
            if query_encoder is not None:
                raise RankkitError(
                    "--query-model with --embeddings-from: the towers are those of the source index. "
                    "Fix: drop --query-model, or build from the corpus"
                )
            source = Manifest.read(embeddings_from)
            if source.kind != "dense":
                raise RankkitError(
                    f"{embeddings_from}: a {source.kind} folder, not a dense index. Fix: pass an index "
                    "built with --save-embeddings (merge shards with `rankkit index merge`)"
                )
            if not same_corpus(source.corpus, corpus_info):
                raise RankkitError(
                    f"{embeddings_from}: its embeddings were computed on {source.corpus.path}, "
                    f"which differs from {corpus}. Fix: pass the same corpus, or drop --embeddings-from"
                )
            vectors = load_embeddings(embeddings_from)
            shutil.copyfile(Path(embeddings_from) / DOCIDS_FILE, folder / DOCIDS_FILE)
            if config.save_embeddings:
                shutil.copyfile(Path(embeddings_from) / EMBEDDINGS_FILE, folder / EMBEDDINGS_FILE)
            model, encoding = source_fields(source)
        else:
            if encoder is None:
                raise RankkitError(
                    "building a dense index needs a model or saved embeddings. "
                    "Fix: pass --model, or --embeddings-from an index built with --save-embeddings"
                )
            model, encoding = encoder_fields(encoder, query_encoder)  # checked before the corpus is encoded
            count = encode_corpus(corpus, fmt, encoder, folder, config.chunk_size)
            if count == 0:
                raise RankkitError(f"{corpus}: no documents. Fix: give a corpus with at least one document")
            vectors = np.memmap(folder / EMBEDDINGS_FILE, dtype=np.float32, mode="r", shape=(count, encoder.dimension))
        manifest = write_dense_index(folder, vectors, corpus_info, model, encoding, config)
    return manifest


class DenseIndex:
    """A dense index folder opened for search (read-only); on the GPUs, when FAISS sees any, as
    `gpu` says (a replica per GPU by default)."""

    def __init__(self, folder: str | Path, search_params: dict[str, int] | None = None, gpu: GpuOptions = GpuOptions()):
        self.folder = Path(folder)
        self.manifest = Manifest.read(self.folder)
        if self.manifest.kind != "dense":
            shard = self.manifest.kind == SHARD_KIND
            fix = "merge the shards with `rankkit index merge`" if shard else "pass a dense index"
            raise RankkitError(f"{folder}: a {self.manifest.kind} index, not a dense one. Fix: {fix}")
        check_sizes(self.folder, self.manifest)
        try:
            index = faiss.read_index(str(self.folder / INDEX_FILE), faiss.IO_FLAG_READ_ONLY)
        except RuntimeError as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise index_error(self.folder, self.manifest, INDEX_FILE, f"FAISS cannot read it ({reason})") from None
        check_count(self.folder, self.manifest, index.ntotal, INDEX_FILE)
        if index.d != self.manifest.dimension:
            raise index_error(
                self.folder,
                self.manifest,
                "manifest.json",
                f"the manifest says {self.manifest.dimension} dimensions, but {INDEX_FILE} holds {index.d}",
            )
        try:
            self.docids = (self.folder / DOCIDS_FILE).read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise index_error(self.folder, self.manifest, DOCIDS_FILE, "not valid UTF-8") from None
        if len(self.docids) != index.ntotal:
            raise index_error(
                self.folder, self.manifest, DOCIDS_FILE, f"{len(self.docids)} docids for {index.ntotal} vectors"
            )
        self.index = to_search_device(index, shard=gpu.shard, fp16=gpu.fp16)
        # the setting tuned at build time, overridden by the caller's
        self.search_params = {**self.manifest.settings.get("search_params", {}), **(search_params or {})}
        set_search_params(self.index, self.search_params, self.folder)
        self._hnsw = isinstance(faiss.downcast_index(self.index), faiss.IndexHNSW)

    def search(self, vectors: np.ndarray, k: int) -> list[list[Hit]]:
        """The top-k hits for each query vector, best first."""
        k = min(k, self.index.ntotal)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        scores, rows = self.index.search(vectors, k)
        if self._hnsw and k > self.index.hnsw.efSearch:
            self._widen_short_lists(vectors, k, scores, rows)
        short = int((rows[:, -1] < 0).sum()) if len(rows) and k else 0  # FAISS pads a short list with -1
        if short:
            self._warn_short(short, len(rows), k, int((rows >= 0).sum(axis=1).min()))
        docids = self.docids  # plain Python lists: a third cheaper than numpy scalars per hit
        return [
            [_new_hit((docids[row], score)) for score, row in zip(score_row, row_ids) if row >= 0]
            for score_row, row_ids in zip(scores.tolist(), rows.tolist())
        ]

    def _widen_short_lists(self, vectors: np.ndarray, k: int, scores: np.ndarray, rows: np.ndarray) -> None:
        """Search again, with efSearch widened to k for these calls only, the queries for which HNSW
        returned fewer than k hits (it can when k is well above efSearch); fills scores/rows in place.
        Full lists are kept as searched: the efSearch they used is the one tuned at build time."""
        short = np.flatnonzero(rows[:, -1] < 0)
        if len(short):
            wider = faiss.SearchParametersHNSW(efSearch=k)
            scores[short], rows[short] = self.index.search(vectors[short], k, params=wider)

    def _warn_short(self, short: int, queries: int, k: int, fewest: int) -> None:
        knob = search_parameter(faiss.downcast_index(self.index))
        fix = (
            f"raise {SEARCH_PARAMETERS[knob]} (now {self.search_params.get(knob, 'the FAISS default')})"
            if knob
            else "rebuild the index"
        )
        warnings.warn(
            f"{self.folder}: {short} of {queries} queries got fewer than the {k} hits asked for (fewest "
            f"{fewest}). Fix: {fix}",
            FewerHitsWarning,
            stacklevel=3,
        )
