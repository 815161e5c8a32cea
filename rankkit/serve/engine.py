"""The search engine behind the HTTP API: the loaded indexes and models, and the work each
endpoint needs, done in worker threads (one per served index, one for the reranker, one for
sentiment), micro-batched."""

from __future__ import annotations

import concurrent.futures
import functools
from pathlib import Path
from typing import Any, Callable, Sequence

from rankkit.data.corpus import read_doc_texts
from rankkit.data.runs import Hit
from rankkit.encode.dev_record import DevRecord
from rankkit.index.kinds import kind_of, open_index
from rankkit.index.manifest import Manifest
from rankkit.retrieve.base import Retriever
from rankkit.retrieve.fusion import fuse, fusion_weights
from rankkit.retrieve.hybrid import retriever_kind
from rankkit.serve.config import ServeConfig
from rankkit.serve.sentiment import classify_batch, load_sentiment
from rankkit.serve.startup import check_something_to_serve


class SearchEngine:
    """Loads what the config names; every method runs in a worker thread, never in the event loop."""

    def __init__(self, config: ServeConfig):
        check_something_to_serve(config)
        self.config = config
        self.reranker = self.sentiment = None
        self.reranker_record: DevRecord | None = None  # the reranker's dev figure against its first stage
        self.retrievers: dict[str, Retriever] = {}  # by search mode, one per served index
        # one thread per index and per kind of other work: pyserini's JVM and torch each stay on one thread
        self.executors = {
            name: concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"rankkit-{name}")
            for name in (*config.index_modes, "rerank", "sentiment")
        }
        try:
            self._load()
        except BaseException:
            self.close()  # no worker threads of an engine that never was
            raise

    def _load(self) -> None:
        config = self.config
        query = config.query_options()
        for mode, folder in config.index_modes.items():
            self.retrievers[mode] = self.executors[mode].submit(open_index, folder, query).result()
        if config.reranker is not None:
            from rankkit.encode.crossencoder import CrossEncoder

            self.reranker = (
                self.executors["rerank"]
                .submit(CrossEncoder, config.reranker, config.device, precision=config.precision, inference=config)
                .result()
            )
            self.reranker_record = DevRecord.read(self.reranker.model_dir)
        if config.sentiment_model is not None:
            self.sentiment = self.executors["sentiment"].submit(load_sentiment, config).result()
        self.doc_texts = self._load_texts() if config.texts else {}

    def _load_texts(self) -> dict[str, str]:
        texts: dict[str, str] = {}
        for folder in self.config.indexes:
            corpus = Manifest.read(folder).corpus
            if Path(corpus.path).exists() and not texts:  # a corpus file, or a folder of text files
                texts = read_doc_texts(corpus.path, corpus.format)  # type: ignore[arg-type]
        return texts

    @property
    def modes(self) -> list[str]:
        return self.config.modes

    def workers(self, batch_wait_s: float) -> dict[str, tuple[Callable[[Sequence[Any]], list[Any]], float]]:
        """Each worker's batch function and how long it waits to fill a micro-batch: an index whose
        queries a model encodes gains from waiting for company; Lucene's BM25 and the reranker
        batch what queued while they were busy (measured in benchmarks/results/serve_load.md: a
        3 ms wait tripled BM25's 1-client latency and lowered its 16-client throughput)."""
        work: dict[str, tuple[Callable[[Sequence[Any]], list[Any]], float]] = {
            mode: (
                functools.partial(self.search_batch, mode),
                batch_wait_s if kind_of(folder).query_model else 0.0,
            )
            for mode, folder in self.config.index_modes.items()
        }
        if self.reranker is not None:
            work["rerank"] = (self.rerank_batch, 0.0)
        if self.sentiment is not None:
            work["sentiment"] = (self.sentiment_batch, batch_wait_s)
        return work

    def search_batch(self, mode: str, items: Sequence[tuple[str, int]]) -> list[list[Hit]]:
        """A micro-batch of (query, k) searched in one call of the mode's index (one encode for a
        dense or SPLADE index)."""
        depth = max(k for _, k in items)
        run = self.retrievers[mode].batch_search({str(i): query for i, (query, _) in enumerate(items)}, depth)
        return [run[str(i)][:k] for i, (_, k) in enumerate(items)]

    def rerank_batch(self, items: Sequence[tuple[str, list[str]]]) -> list[list[float]]:
        assert self.reranker is not None
        pairs = [(query, passage) for query, passages in items for passage in passages]
        scores = self.reranker.score(pairs).tolist()
        out, start = [], 0
        for _, passages in items:
            out.append(scores[start : start + len(passages)])
            start += len(passages)
        return out

    def fuse(self, rankings: Sequence[list[Hit]], k: int) -> list[Hit]:
        """The served indexes' lists (in self.retrievers' order) fused as `rankkit search` fuses them."""
        fusion = self.config.fusion
        kinds = [retriever_kind(retriever) for retriever in self.retrievers.values()]
        return fuse(rankings, fusion_weights(kinds, fusion), k, fusion)

    def sentiment_batch(self, texts: Sequence[str]) -> list[float]:
        return classify_batch(self.sentiment, texts)

    def close(self) -> None:
        """Stop the workers without waiting for a batch that is still running (at shutdown, the
        requests past the grace period were already answered; see serve/server.py)."""
        for executor in self.executors.values():
            executor.shutdown(wait=False, cancel_futures=True)
