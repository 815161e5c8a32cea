"""batch_search with a progress bar: the queries are searched in chunks through the retriever's own
batch_search (so BM25 keeps its threads and dense its encoding batches) and a bar on stderr counts
them, where there are more than a few (a search over hundreds of queries takes a minute)."""

from __future__ import annotations

from typing import Mapping

from tqdm.auto import tqdm

from rankkit.data.runs import Run
from rankkit.retrieve.base import Retriever, check_k

PROGRESS_MIN_QUERIES = 50  # fewer are searched in one go, without a bar
CHUNK_QUERIES = 256


def search_with_progress(
    retriever: Retriever,
    queries: Mapping[str, str],
    k: int = 10,
    desc: str = "searching",
    chunk_size: int = CHUNK_QUERIES,
    min_queries: int = PROGRESS_MIN_QUERIES,
) -> Run:
    """retriever.batch_search(queries, k), with a bar over the queries when there are more than
    `min_queries`; the run is the same either way."""
    check_k(k)
    if len(queries) <= min_queries:
        return retriever.batch_search(queries, k)
    qids, run = list(queries), {}
    with tqdm(total=len(qids), desc=desc, unit="query", dynamic_ncols=True) as bar:
        for start in range(0, len(qids), chunk_size):
            chunk = {qid: queries[qid] for qid in qids[start : start + chunk_size]}
            run.update(retriever.batch_search(chunk, k))
            bar.update(len(chunk))
    return run
