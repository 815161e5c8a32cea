"""BM25 indexes through pyserini (Lucene). pyserini is imported lazily: it starts a JVM."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rankkit.data.corpus import CorpusFormat, detect_corpus_format, read_corpus
from rankkit.data.files import atomic_dir
from rankkit.errors import RankkitError
from rankkit.index.java import configure_java
from rankkit.index.integrity import check_count, check_sizes, index_error
from rankkit.index.manifest import CorpusInfo, Manifest, is_index_folder
from rankkit.index.progress import corpus_bar, corpus_size

LUCENE_DIR = "lucene"
BATCH = 10_000


def _pyserini(module: str) -> Any:
    configure_java()
    try:
        if module == "indexer":
            from pyserini.index.lucene import LuceneIndexer
            return LuceneIndexer
        from pyserini.search.lucene import LuceneSearcher
        return LuceneSearcher
    except ImportError:
        raise RankkitError("BM25 needs pyserini. Fix: `pip install 'rankkit[bm25]'`") from None


def build_bm25_index(corpus: str | Path, out: str | Path, fmt: CorpusFormat | None = None,
                     threads: int = 2, overwrite: bool = False) -> Manifest:
    """Index `corpus` with Lucene (Anserini's default English analyzer, positions and raw text
    stored) into the folder `out`, atomically. Returns its manifest."""
    fmt = fmt or ("tsv" if str(corpus).startswith("irds:") else detect_corpus_format(corpus))
    corpus_info = CorpusInfo.of(corpus, fmt)
    indexer_class = _pyserini("indexer")
    with atomic_dir(out, overwrite=overwrite, replaceable=is_index_folder, what="a rankkit index") as folder:
        lucene = folder / LUCENE_DIR
        indexer = indexer_class(args=["-index", str(lucene), "-storePositions", "-storeDocvectors", "-storeRaw"],
                                threads=threads)
        count, batch = 0, []
        try:
            with corpus_bar(corpus_size(corpus, fmt)[0], "indexing corpus", "doc") as progress:
                for doc in read_corpus(corpus, fmt, word_ids=True):
                    batch.append({"id": doc.docid, "contents": doc.contents})
                    if len(batch) == BATCH:
                        indexer.add_batch_dict(batch)
                        count, batch = count + len(batch), []
                        progress.update(BATCH)
                if batch:
                    indexer.add_batch_dict(batch)
                    count += len(batch)
                    progress.update(len(batch))
        finally:
            indexer.close()
        if count == 0:
            raise RankkitError(f"{corpus}: no documents. Fix: give a corpus with at least one document")
        manifest = Manifest(kind="bm25", count=count, corpus=corpus_info, index_type="lucene",
                            settings={"analyzer": "anserini-default-english"})
        manifest = manifest.write(folder)
    return manifest


def open_lucene_searcher(folder: str | Path, k1: float, b: float) -> Any:
    """A pyserini LuceneSearcher over a rankkit BM25 index folder, with BM25(k1, b)."""
    manifest = Manifest.read(folder)
    if manifest.kind != "bm25":
        raise RankkitError(f"{folder}: a {manifest.kind} index, not a BM25 one. Fix: pass a BM25 index")
    check_sizes(folder, manifest)
    searcher_class = _pyserini("searcher")
    try:
        searcher = searcher_class(str(Path(folder) / LUCENE_DIR))
    except Exception as exc:  # jnius.JavaException: corrupt or missing segments
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise index_error(folder, manifest, LUCENE_DIR, f"Lucene cannot open it ({reason})") from None
    check_count(folder, manifest, searcher.num_docs, "the Lucene index")
    searcher.set_bm25(float(k1), float(b))
    return searcher
