"""BM25 retrieval over a Lucene index (pyserini's LuceneSearcher)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from rankkit.data.runs import Hit, Run
from rankkit.index.bm25 import open_lucene_searcher
from rankkit.retrieve.base import check_k, check_query

# pyserini's MS MARCO passage baselines
DEFAULT_K1 = 0.9
DEFAULT_B = 0.4


class BM25Retriever:
    def __init__(self, folder: str | Path, k1: float = DEFAULT_K1, b: float = DEFAULT_B, threads: int = 2):
        self.searcher = open_lucene_searcher(folder, k1, b)
        self.threads = threads
        self.name = f"bm25:{Path(folder).name}"

    def search(self, query: str, k: int = 10) -> list[Hit]:
        return [Hit(h.docid, float(h.score)) for h in self.searcher.search(check_query(query), check_k(k))]

    def batch_search(self, queries: Mapping[str, str], k: int = 10) -> Run:
        check_k(k)
        qids = list(queries)
        texts = [check_query(queries[qid]) for qid in qids]
        found = self.searcher.batch_search(texts, qids, k, threads=self.threads)
        return {qid: [Hit(h.docid, float(h.score)) for h in found.get(qid, [])] for qid in qids}
