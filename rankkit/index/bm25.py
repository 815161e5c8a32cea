"""BM25 indexes through pyserini (Lucene). pyserini is imported lazily: it starts a JVM. Search
calls Anserini's Java searcher directly, as pyserini's LuceneSearcher does, so that a BM25 query
imports neither torch nor transformers nor faiss (pyserini's Python searchers import all three)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

from rankkit.data.corpus import CorpusFormat, corpus_format, read_corpus
from rankkit.data.files import atomic_dir
from rankkit.errors import RankkitError
from rankkit.index.java import configure_java, start_jvm
from rankkit.index.lucene import LUCENE_DIR, check_committed, open_lucene
from rankkit.index.manifest import CorpusInfo, Manifest, is_index_folder
from rankkit.index.progress import corpus_bar, corpus_size
from rankkit.retrieve.options import BM25Params

BATCH = 10_000


def _pyserini_indexer() -> Any:
    configure_java()
    try:
        from pyserini.index.lucene import LuceneIndexer
    except ImportError:
        raise RankkitError("BM25 needs pyserini. Fix: `pip install 'rankkit[bm25]'`") from None
    return LuceneIndexer


class LuceneBM25Searcher:
    """Anserini's SimpleSearcher over a Lucene index, called exactly as pyserini's LuceneSearcher
    calls it for a plain query string (no fields, no query generator): `search` and `batch_search`
    return Anserini's hits (ScoredDoc: docid, score, ...), best first."""

    def __init__(self, index_dir: str):
        start_jvm()
        from pyserini.pyclass import autoclass

        self.object = autoclass("io.anserini.search.SimpleSearcher")(index_dir)
        self.num_docs = self.object.get_total_num_docs()
        self._array_list = autoclass("java.util.ArrayList")

    def set_bm25(self, k1: float, b: float) -> None:
        self.object.set_bm25(float(k1), float(b))

    def set_rm3(self, fb_terms: int, fb_docs: int, original_query_weight: float) -> None:
        """RM3 feedback over the stored document vectors, as pyserini's LuceneSearcher.set_rm3
        sets it for an index with term vectors (rankkit's BM25 indexes store them)."""
        self.object.set_rm3(None, int(fb_terms), int(fb_docs), float(original_query_weight), False, True)

    def search(self, query: str, k: int = 10) -> list[Any]:
        return list(self.object.search(query, int(k)))

    def batch_search(
        self, queries: Sequence[str], qids: Sequence[str], k: int = 10, threads: int = 1
    ) -> dict[str, list[Any]]:
        query_strings, qid_strings = self._array_list(), self._array_list()
        for query in queries:
            query_strings.add(query)
        for qid in qids:
            qid_strings.add(qid)
        results = self.object.batch_search(query_strings, qid_strings, int(k), int(threads))
        return {entry.getKey(): list(entry.getValue()) for entry in results.entrySet().toArray()}


def build_bm25_index(
    corpus: str | Path, out: str | Path, fmt: CorpusFormat | None = None, threads: int = 2, overwrite: bool = False
) -> Manifest:
    """Index `corpus` with Lucene (Anserini's default English analyzer, positions and raw text
    stored) into the folder `out`, atomically. Returns its manifest."""
    fmt = fmt or corpus_format(corpus)
    corpus_info = CorpusInfo.of(corpus, fmt)
    indexer_class = _pyserini_indexer()
    with atomic_dir(out, overwrite=overwrite, replaceable=is_index_folder, what="a rankkit index") as folder:
        lucene = folder / LUCENE_DIR
        indexer = indexer_class(
            args=["-index", str(lucene), "-storePositions", "-storeDocvectors", "-storeRaw"], threads=threads
        )
        count, batch, empty = 0, [], []
        try:
            with corpus_bar(corpus_size(corpus, fmt)[0], "indexing corpus", "doc") as progress:
                for doc in read_corpus(corpus, fmt, word_ids=True):
                    if doc.contents.strip():
                        batch.append({"id": doc.docid, "contents": doc.contents})
                    else:  # Anserini skips a document without text: nothing in it can match
                        empty.append(doc.docid)
                    if len(batch) == BATCH:
                        indexer.add_batch_dict(batch)
                        count, batch = count + len(batch), []
                    progress.update(1)
                if batch:
                    indexer.add_batch_dict(batch)
                    count += len(batch)
        finally:
            indexer.close()
        if count == 0:
            raise RankkitError(f"{corpus}: no documents with text. Fix: give a corpus with at least one")
        check_committed(out, lucene, count, LuceneBM25Searcher)
        if empty:
            shown = ", ".join(empty[:5]) + (", ..." if len(empty) > 5 else "")
            print(f"note: {len(empty)} documents without text are not in the index: {shown}", file=sys.stderr)
        manifest = Manifest(
            kind="bm25",
            count=count,
            corpus=corpus_info,
            index_type="lucene",
            settings={"analyzer": "anserini-default-english", "documents_without_text": len(empty)},
        )
        manifest = manifest.write(folder)
    return manifest


def open_lucene_searcher(folder: str | Path, params: BM25Params = BM25Params()) -> LuceneBM25Searcher:
    """A searcher over a rankkit BM25 index folder, with BM25(k1, b) and RM3 as `params` say."""
    searcher, _ = open_lucene(folder, "bm25", "BM25", LuceneBM25Searcher)
    searcher.set_bm25(params.k1, params.b)
    if params.rm3:
        searcher.set_rm3(params.rm3_fb_terms, params.rm3_fb_docs, params.rm3_original_query_weight)
    return searcher
