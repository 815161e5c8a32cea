"""The search engine behind the HTTP API: the loaded indexes and models, and the work each
endpoint needs, done in worker threads (one per kind of work), micro-batched."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path
from typing import Sequence

from rankkit.data.corpus import read_doc_texts
from rankkit.data.runs import Hit
from rankkit.encode.dev_record import DevRecord
from rankkit.index.manifest import Manifest
from rankkit.retrieve.fusion import fuse, fusion_weights
from rankkit.serve.config import ServeConfig
from rankkit.serve.sentiment import classify_batch, load_sentiment
from rankkit.serve.startup import check_something_to_serve


class SearchEngine:
    """Loads what the config names; every method runs in a worker thread, never in the event loop."""

    def __init__(self, config: ServeConfig):
        check_something_to_serve(config)
        self.config = config
        self.dense = self.bm25 = self.reranker = self.sentiment = None
        self.reranker_record: DevRecord | None = None  # the reranker's dev figure against its first stage
        # one thread per kind of work: pyserini's JVM and torch each stay on one thread
        self.executors = {
            name: concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"rankkit-{name}")
            for name in ("dense", "bm25", "rerank", "sentiment")
        }
        try:
            self._load()
        except BaseException:
            self.close()  # no worker threads of an engine that never was
            raise

    def _load(self) -> None:
        config = self.config
        folders = config.index_by_kind if config.indexes else {}
        if "dense" in folders:
            from rankkit.index.faiss_device import GpuOptions
            from rankkit.retrieve.dense import DenseRetriever

            self.dense = (
                self.executors["dense"]
                .submit(
                    DenseRetriever.from_folder,
                    folders["dense"],
                    config.model,
                    config.device,
                    precision=config.precision,
                    search_params=config.search_params(),
                    query_prompt=config.query_prompt,
                    gpu=GpuOptions(config.gpu_shard, config.gpu_fp16),
                )
                .result()
            )
        if "bm25" in folders:
            from rankkit.retrieve.bm25 import BM25Retriever

            self.bm25 = self.executors["bm25"].submit(BM25Retriever, folders["bm25"]).result()
        if config.reranker is not None:
            from rankkit.encode.crossencoder import CrossEncoder

            self.reranker = (
                self.executors["rerank"]
                .submit(CrossEncoder, config.reranker, config.device, precision=config.precision)
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
        return [m for m, ok in (("dense", self.dense), ("bm25", self.bm25), ("hybrid", self.dense and self.bm25)) if ok]

    def dense_batch(self, items: Sequence[tuple[str, int]]) -> list[list[Hit]]:
        """One encode and one FAISS search for a micro-batch of (query, k)."""
        assert self.dense is not None
        vectors = self.dense.encoder.encode([q for q, _ in items], role="query")
        found = self.dense.index.search(vectors, max(k for _, k in items))
        return [hits[:k] for hits, (_, k) in zip(found, items)]

    def bm25_batch(self, items: Sequence[tuple[str, int]]) -> list[list[Hit]]:
        assert self.bm25 is not None
        depth = max(k for _, k in items)
        run = self.bm25.batch_search({str(i): q for i, (q, _) in enumerate(items)}, depth)
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

    def fuse(self, dense: list[Hit], bm25: list[Hit], k: int) -> list[Hit]:
        fusion = self.config.fusion
        return fuse([dense, bm25], fusion_weights(["dense", "bm25"], fusion), k, fusion)

    def sentiment_batch(self, texts: Sequence[str]) -> list[float]:
        return classify_batch(self.sentiment, texts)

    def close(self) -> None:
        """Stop the workers without waiting for a batch that is still running (at shutdown, the
        requests past the grace period were already answered; see serve/server.py)."""
        for executor in self.executors.values():
            executor.shutdown(wait=False, cancel_futures=True)
