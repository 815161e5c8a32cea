"""SPLADE indexes: each passage's term weights from a SPLADE model, quantised to pyserini's integer
impacts, in a Lucene impact index that Anserini writes from a JsonVectorCollection (as
`python -m pyserini.index.lucene --collection JsonVectorCollection --impact --pretokenized` does)
and that pyserini's LuceneImpactSearcher opens. A query's score is the sum over its terms of query
impact x passage impact.

The folder holds manifest.json and lucene/; the passages' vectors are written as JSONL under the
build's temporary folder for Anserini to read, and removed once it has indexed them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Mapping, Sequence

from rankkit.data.corpus import CorpusFormat, corpus_format, document_chunks, read_corpus_rows
from rankkit.data.files import atomic_dir
from rankkit.encode.splade import SpladeEncoder, quantize
from rankkit.errors import RankkitError
from rankkit.index.java import start_jvm
from rankkit.index.lucene import LUCENE_DIR, check_committed, open_lucene
from rankkit.index.manifest import CorpusInfo, Manifest, is_index_folder
from rankkit.index.progress import corpus_bar, corpus_size

KIND = "splade"
VECTORS_DIR = "vectors"  # the JsonVectorCollection Anserini indexes; removed after
CHUNK = 2_000  # passages encoded and written at a time
MAX_QUERY_TERMS = 1024  # Lucene's limit of clauses in one query: a longer query keeps its heaviest terms
QUANTIZATION = "round(weight / 5 * 256)"  # pyserini's, see rankkit.encode.splade.quantize


def write_vectors(corpus: str | Path, fmt: CorpusFormat, encoder: SpladeEncoder, into: Path) -> int:
    """Encode the corpus chunk by chunk into a JsonVectorCollection (one JSONL file) under `into`,
    under one progress bar over the passages' characters. Returns the number of passages."""
    into.mkdir()
    count = 0
    with (
        open(into / "part-0.jsonl", "w", encoding="utf-8") as out,
        corpus_bar(corpus_size(corpus, fmt)[1], "encoding corpus (splade)", "char") as progress,
    ):
        for chunk in document_chunks(read_corpus_rows(corpus, fmt, None, word_ids=True), CHUNK):
            texts = [doc.contents for doc in chunk]
            weights = encoder.encode(
                texts, "passage", on_batch=lambda batch: progress.update(sum(len(texts[i]) for i in batch))
            )
            for doc, vector in zip(chunk, weights):
                out.write(json.dumps({"id": doc.docid, "contents": "", "vector": quantize(vector)}) + "\n")
            count += len(chunk)
    return count


def index_vectors(vectors: Path, lucene: Path, threads: int) -> None:
    """Anserini's IndexCollection over the JsonVectorCollection `vectors`: an impact index of
    pre-tokenised terms (no analyzer), as pyserini builds one."""
    start_jvm()
    from pyserini.pyclass import autoclass

    arguments = ["-collection", "JsonVectorCollection", "-input", str(vectors), "-index", str(lucene)]
    arguments += ["-generator", "DefaultLuceneDocumentGenerator", "-threads", str(threads)]
    autoclass("io.anserini.index.IndexCollection").main([*arguments, "-impact", "-pretokenized", "-quiet"])


def build_splade_index(
    corpus: str | Path,
    out: str | Path,
    encoder: SpladeEncoder,
    fmt: CorpusFormat | None = None,
    threads: int = 2,
    overwrite: bool = False,
) -> Manifest:
    """Encode `corpus` with the SPLADE `encoder` and write an impact index folder to `out`,
    atomically. Returns its manifest."""
    fmt = fmt or corpus_format(corpus)
    corpus_info = CorpusInfo.of(corpus, fmt)
    with atomic_dir(out, overwrite=overwrite, replaceable=is_index_folder, what="a rankkit index") as folder:
        count = write_vectors(corpus, fmt, encoder, folder / VECTORS_DIR)
        if count == 0:
            raise RankkitError(f"{corpus}: no documents. Fix: give a corpus with at least one document")
        index_vectors(folder / VECTORS_DIR, folder / LUCENE_DIR, threads)
        shutil.rmtree(folder / VECTORS_DIR)
        check_committed(out, folder / LUCENE_DIR, count, ImpactSearcher)
        manifest = Manifest(
            kind=KIND,
            count=count,
            corpus=corpus_info,
            index_type="lucene-impact",
            model=encoder.name,
            model_fingerprint=encoder.fingerprint,
            pooling=encoder.pooling,
            max_length=encoder.max_length,
            settings={
                "precision": encoder.precision,
                "activation": encoder.activation,
                "quantization": QUANTIZATION,
                **encoder.runner.describe(),
            },
        )
        manifest = manifest.write(folder)
    return manifest


class ImpactSearcher:
    """Anserini's SimpleImpactSearcher, called as pyserini's LuceneImpactSearcher calls it for
    queries it has encoded (a {term: integer impact} map each)."""

    def __init__(self, index_dir: str):
        start_jvm()
        from pyserini.pyclass import autoclass

        self.object = autoclass("io.anserini.search.SimpleImpactSearcher")(index_dir)
        self.num_docs = self.object.get_total_num_docs()
        self._hash_map = autoclass("java.util.HashMap")
        self._integer = autoclass("java.lang.Integer")
        self._array_list = autoclass("java.util.ArrayList")

    def _java_query(self, impacts: Mapping[str, int]) -> Any:
        query = self._hash_map()
        heaviest = sorted(impacts.items(), key=lambda item: -item[1])[:MAX_QUERY_TERMS]
        for term, impact in heaviest:
            query.put(term, self._integer(int(impact)))
        return query

    def search(self, impacts: Mapping[str, int], k: int) -> list[Any]:
        return list(self.object.search(self._java_query(impacts), int(k))) if impacts else []

    def batch_search(
        self, queries: Sequence[Mapping[str, int]], qids: Sequence[str], k: int, threads: int
    ) -> dict[str, list[Any]]:
        java_queries, java_qids = self._array_list(), self._array_list()
        for impacts, qid in zip(queries, qids):
            if impacts:  # a query without terms finds nothing (Lucene refuses an empty one)
                java_queries.add(self._java_query(impacts))
                java_qids.add(qid)
        if java_queries.size() == 0:
            return {}
        found = self.object.batch_search(java_queries, java_qids, int(k), int(threads))
        return {entry.getKey(): list(entry.getValue()) for entry in found.entrySet().toArray()}


def open_impact_searcher(folder: str | Path) -> tuple[ImpactSearcher, Manifest]:
    """A searcher over a rankkit SPLADE index folder, its files and count checked, and its manifest."""
    return open_lucene(folder, KIND, "SPLADE", ImpactSearcher)
