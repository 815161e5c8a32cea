"""BM25 retrieval (with RM3 when asked) over a Lucene index (pyserini's LuceneSearcher)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from rankkit.data.runs import Hit, Run
from rankkit.errors import RankkitError
from rankkit.index.bm25 import open_lucene_searcher
from rankkit.retrieve.base import check_k, check_query
from rankkit.retrieve.options import BM25Params


def _too_many_terms(exc: Exception, qid: str | None = None) -> RankkitError | None:
    """Lucene's limit of 1024 clauses per query, as a rankkit error (None for other failures)."""
    if "TooManyClauses" not in str(exc):
        return None
    which = f"query {qid}" if qid is not None else "the query"
    return RankkitError(
        f"{which} has more distinct terms than Lucene allows in one BM25 query (1024). Fix: shorten the query"
    )


class BM25Retriever:
    def __init__(self, folder: str | Path, params: BM25Params = BM25Params(), threads: int = 2):
        self.searcher = open_lucene_searcher(folder, params)
        self.threads = threads
        self.name = f"bm25:{Path(folder).name}"

    def search(self, query: str, k: int = 10) -> list[Hit]:
        query, k = check_query(query), check_k(k)
        try:
            found = self.searcher.search(query, k)
        except Exception as exc:  # jnius.JavaException
            raise _too_many_terms(exc) or exc from None
        return [Hit(h.docid, float(h.score)) for h in found]

    def batch_search(self, queries: Mapping[str, str], k: int = 10) -> Run:
        check_k(k)
        qids = list(queries)
        texts = [check_query(queries[qid]) for qid in qids]
        if len(qids) == 1:  # Anserini's batch search starts a thread pool per call: slower for one query
            return {qids[0]: self.search(texts[0], k)}
        try:
            found = self.searcher.batch_search(texts, qids, k, threads=self.threads)
        except Exception as exc:  # jnius.JavaException; in a batch, Lucene's own reason is lost: find it
            for qid, text in zip(qids, texts):
                try:
                    self.searcher.search(text, 1)
                except Exception as single:
                    raise _too_many_terms(single, qid) or exc from None
            raise
        return {qid: [Hit(h.docid, float(h.score)) for h in found.get(qid, [])] for qid in qids}
