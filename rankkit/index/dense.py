"""Dense indexes: corpus embeddings in a FAISS index chosen by a factory string.

An index folder holds manifest.json, index.faiss, docids.txt (row i of the index is line i) and,
when asked, embeddings.f32 (float32, row-major, [count, dimension]) so another index type can be
built from the same embeddings without re-encoding.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import faiss
import numpy as np

from rankkit.data.corpus import CorpusFormat, Document, detect_corpus_format, read_corpus
from rankkit.data.files import atomic_dir
from rankkit.data.runs import Hit
from rankkit.encode.biencoder import BiEncoder
from rankkit.errors import RankkitError
from rankkit.index.faiss_device import to_cpu, to_search_device
from rankkit.index.manifest import CorpusInfo, Manifest

INDEX_FILE = "index.faiss"
DOCIDS_FILE = "docids.txt"
EMBEDDINGS_FILE = "embeddings.f32"
MAX_TRAINING_VECTORS = 100_000


@dataclass(frozen=True)
class DenseBuildConfig:
    factory: str = "Flat"
    chunk_size: int = 20_000  # documents encoded per chunk: bounds memory on large corpora
    save_embeddings: bool = False
    seed: int = 0


def _chunks(docs: Iterator[Document], size: int) -> Iterator[list[Document]]:
    chunk: list[Document] = []
    for doc in docs:
        chunk.append(doc)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _encode_corpus(docs: Iterator[Document], encoder: BiEncoder, folder: Path, chunk_size: int) -> int:
    count = 0
    with open(folder / EMBEDDINGS_FILE, "wb") as vectors, open(folder / DOCIDS_FILE, "w", encoding="utf-8") as ids:
        for chunk in _chunks(docs, chunk_size):
            if any("\n" in d.docid for d in chunk):
                raise RankkitError("a docid contains a newline. Fix: use single-line document ids")
            embeddings = encoder.encode([d.contents for d in chunk], show_progress=True,
                                        desc=f"encoding docs {count + 1}-{count + len(chunk)}")
            vectors.write(embeddings.tobytes())
            ids.writelines(f"{d.docid}\n" for d in chunk)
            count += len(chunk)
    return count


def load_embeddings(folder: str | Path) -> np.ndarray:
    """The saved embeddings of an index, memory-mapped read-only."""
    manifest = Manifest.read(folder)
    path = Path(folder) / EMBEDDINGS_FILE
    if not path.is_file():
        raise RankkitError(f"{folder}: no saved embeddings. Fix: rebuild it with --save-embeddings")
    return np.memmap(path, dtype=np.float32, mode="r", shape=(manifest.count, manifest.dimension))


def _make_faiss_index(vectors: np.ndarray, factory: str, seed: int) -> faiss.Index:
    count, dimension = vectors.shape
    try:
        index = faiss.index_factory(dimension, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise RankkitError(f"FAISS cannot build {factory!r} ({str(exc).strip().splitlines()[-1]}). "
                           "Fix: use a factory string such as Flat, HNSW32 or IVF256,PQ32") from None
    index = to_search_device(index)
    if not index.is_trained:
        rows = np.random.default_rng(seed).permutation(count)[:MAX_TRAINING_VECTORS]
        try:
            index.train(np.ascontiguousarray(vectors[np.sort(rows)]))
        except RuntimeError as exc:
            raise RankkitError(f"FAISS could not train {factory!r} on {count} vectors ({str(exc).strip()[:200]}). "
                               "Fix: use fewer IVF lists or PQ centroids for a corpus this size, or Flat") from None
    for start in range(0, count, 50_000):
        index.add(np.ascontiguousarray(vectors[start:start + 50_000]))
    return to_cpu(index)


def build_dense_index(corpus: str | Path, out: str | Path, encoder: BiEncoder | None,
                      config: DenseBuildConfig = DenseBuildConfig(), fmt: CorpusFormat | None = None,
                      embeddings_from: str | Path | None = None, overwrite: bool = False) -> Manifest:
    """Encode `corpus` (or reuse the embeddings saved in the index `embeddings_from`) and write a
    dense index folder to `out` atomically. Returns its manifest."""
    fmt = fmt or ("tsv" if str(corpus).startswith("irds:") else detect_corpus_format(corpus))
    corpus_info = CorpusInfo.of(corpus, fmt)
    with atomic_dir(out, overwrite=overwrite) as folder:
        if embeddings_from is not None:
            source = Manifest.read(embeddings_from)
            # ir_datasets corpora carry no checksum: there the dataset id must match
            if (source.corpus.sha256, source.corpus.sha256 or source.corpus.path) != \
                    (corpus_info.sha256, corpus_info.sha256 or corpus_info.path):
                raise RankkitError(f"{embeddings_from}: its embeddings were computed on {source.corpus.path}, "
                                   f"which differs from {corpus}. Fix: pass the same corpus, or drop --embeddings-from")
            vectors = load_embeddings(embeddings_from)
            shutil.copyfile(Path(embeddings_from) / DOCIDS_FILE, folder / DOCIDS_FILE)
            if config.save_embeddings:
                shutil.copyfile(Path(embeddings_from) / EMBEDDINGS_FILE, folder / EMBEDDINGS_FILE)
            model = dict(model=source.model, model_fingerprint=source.model_fingerprint, dimension=source.dimension,
                         pooling=source.pooling, normalized=source.normalized, max_length=source.max_length)
            precision = source.settings.get("precision", "fp32")
        else:
            if encoder is None:
                raise RankkitError("building a dense index needs a model or saved embeddings. "
                                   "Fix: pass --model, or --embeddings-from an index built with --save-embeddings")
            count = _encode_corpus(read_corpus(corpus, fmt), encoder, folder, config.chunk_size)
            if count == 0:
                raise RankkitError(f"{corpus}: no documents. Fix: give a corpus with at least one document")
            vectors = np.memmap(folder / EMBEDDINGS_FILE, dtype=np.float32, mode="r",
                                shape=(count, encoder.dimension))
            model = dict(model=encoder.name, model_fingerprint=encoder.fingerprint, dimension=encoder.dimension,
                         pooling=encoder.pooling_mode, normalized=encoder.normalized,
                         max_length=encoder.max_length)
            precision = encoder.precision
        index = _make_faiss_index(vectors, config.factory, config.seed)
        faiss.write_index(index, str(folder / INDEX_FILE))
        del vectors
        if not config.save_embeddings:
            (folder / EMBEDDINGS_FILE).unlink(missing_ok=True)
        manifest = Manifest(kind="dense", count=index.ntotal, corpus=corpus_info, index_type=config.factory,
                            metric="ip", settings={"seed": config.seed, "precision": precision}, **model)
        manifest.write(folder)
    return manifest


class DenseIndex:
    """A dense index folder opened for search (read-only)."""

    def __init__(self, folder: str | Path, search_params: dict[str, int] | None = None):
        self.folder = Path(folder)
        self.manifest = Manifest.read(self.folder)
        if self.manifest.kind != "dense":
            raise RankkitError(f"{folder}: a {self.manifest.kind} index, not a dense one. Fix: pass a dense index")
        index = faiss.read_index(str(self.folder / INDEX_FILE), faiss.IO_FLAG_READ_ONLY)
        for name, value in (search_params or {}).items():
            try:
                faiss.ParameterSpace().set_index_parameter(index, name, value)
            except RuntimeError:
                raise RankkitError(f"{folder}: {self.manifest.index_type} has no search parameter {name!r}. "
                                   "Fix: use efSearch for HNSW, nprobe for IVF") from None
        self.index = to_search_device(index)
        self.docids = (self.folder / DOCIDS_FILE).read_text(encoding="utf-8").splitlines()
        if len(self.docids) != self.index.ntotal:
            raise RankkitError(f"{folder}: {len(self.docids)} docids for {self.index.ntotal} vectors. Fix: rebuild it")

    def search(self, vectors: np.ndarray, k: int) -> list[list[Hit]]:
        """The top-k hits for each query vector, best first."""
        k = min(k, self.index.ntotal)
        scores, rows = self.index.search(np.ascontiguousarray(vectors, dtype=np.float32), k)
        docids = self.docids  # plain Python lists: a third cheaper than numpy scalars per hit
        return [[Hit(docids[row], score) for score, row in zip(score_row, row_ids) if row >= 0]
                for score_row, row_ids in zip(scores.tolist(), rows.tolist())]
