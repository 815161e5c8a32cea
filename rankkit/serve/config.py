"""The server's configuration: what it loads, its limits and its connection settings."""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from rankkit.errors import RankkitError
from rankkit.options import option
from rankkit.retrieve.fusion import FusionConfig
from rankkit.retrieve.options import BM25Params, DenseQuery, QueryOptions

API_KEY_ENV = "RANKKIT_API_KEY"
HYBRID = "hybrid"  # the search mode that fuses every served index


@dataclass(frozen=True, kw_only=True)
class ServeLimits:
    """What one request may ask for, and what a slow or hostile client meets (rankkit.serve.server)."""

    panel: ClassVar[str] = "Serve limits"

    max_k: int = option(1000, "Largest k a search may ask for.", low=1)
    max_query_chars: int = option(1000, "Longest query, in characters.", low=1)
    max_batch_queries: int = option(64, "Most queries in one /search/batch request.", low=1)
    max_passages: int = option(
        256, "Most passages in one /rerank request, and the largest rerank_depth of /search.", low=1
    )
    max_body_bytes: int = option(1_000_000, "Largest request body (413 over it).", low=1)
    batch_wait_ms: float = option(
        3.0,
        "Longest wait to fill a dense micro-batch; it ends early once as many "
        "queries as were recently in flight have arrived.",
        low=0,
    )
    batch_max: int = option(32, "Largest micro-batch.", low=1)
    max_queue: int = option(256, "Waiting queries per worker before answering 503.", low=1)
    max_header_bytes: int = option(
        16_384, "Largest request line + headers in bytes (400 over it; h11's limit).", low=1024
    )
    max_headers: int = option(100, "Most request headers (431 over it).", low=1)
    client_timeout_s: float = option(
        10.0,
        "Seconds a client has to send the request line and headers (else the "
        "connection is closed), and again the body (else 408).",
        low=0.1,
        flags=("--client-timeout",),
    )
    keep_alive_s: float = option(
        5.0, "Seconds an idle keep-alive connection stays open.", low=0.1, flags=("--keep-alive-timeout",)
    )
    max_connections: int = option(
        1024, "Open connections + running requests before new requests get 503 (uvicorn's limit_concurrency).", low=1
    )
    graceful_timeout_s: float = option(
        30.0,
        "On SIGTERM/SIGINT, seconds in-flight requests may still finish; "
        "those still running are then answered 503 shutting_down and the "
        "process exits.",
        low=0,
        flags=("--graceful-timeout",),
    )


@dataclass(frozen=True, kw_only=True)
class ServeConfig(ServeLimits, DenseQuery):
    """A server: its indexes (any number, of any kinds), models, address and limits."""

    small_calls_on_one_thread: bool = True  # one query per call on one engine thread (see Inference)

    indexes: tuple[str, ...] = option(
        (),
        "Index folder to serve (repeatable: each is a search mode, and two or more are also fused as "
        "the mode hybrid; each index's manifest says its kind).",
        flags=("--index", "-i"),
    )
    reranker: str | None = option(None, "Cross-encoder folder for reranking (/rerank, rerank: true).")
    sentiment_model: str | None = option(None, "Sentiment model folder: serves POST /sentiment.")
    host: str = option("127.0.0.1", "Address to listen on (0.0.0.0: every interface).")
    port: int = option(8000, "TCP port to listen on.", low=1, high=65535)
    api_key: str | None = option(
        None,
        "Require this X-API-Key header on every endpoint but /health, /docs and "
        f"the page. Visible ASCII, not empty. Also read from ${API_KEY_ENV}.",
        hidden_default=True,
    )
    texts: bool = option(True, "Load passage texts (needed for text in results and reranking).")
    fusion: FusionConfig = field(default_factory=FusionConfig)  # hybrid: the same fusion as `rankkit search`
    bm25: BM25Params = field(default_factory=BM25Params)  # a BM25 index's k1, b and RM3

    @property
    def hybrid_depth(self) -> int:
        """Hits each retriever contributes to a hybrid query (as in `rankkit search`)."""
        return self.fusion.depth

    @property
    def modes(self) -> list[str]:
        """The search modes: one per index (see index_modes; the first is the default), and hybrid
        over two or more."""
        return [*self.index_modes, *([HYBRID] if len(self.indexes) > 1 else [])]

    def query_options(self) -> QueryOptions:
        """The query option groups every served index takes its own from (as `rankkit search`'s)."""
        return QueryOptions(self, self.bm25)

    @functools.cached_property
    def index_modes(self) -> dict[str, str]:
        """The served index folders by search mode: an index's kind when it is the only one of its
        kind, else KIND:FOLDER_NAME. A folder given twice is refused."""
        from rankkit.index.manifest import Manifest

        given: set[Path] = set()
        for folder in self.indexes:
            if Path(folder).resolve() in given:
                raise RankkitError(f"{folder}: given twice with -i. Fix: pass each index once")
            given.add(Path(folder).resolve())
        kinds = [(folder, Manifest.read(folder).kind) for folder in self.indexes]
        of_kind = Counter(kind for _, kind in kinds)
        modes: dict[str, str] = {}
        for folder, kind in kinds:
            mode = kind if of_kind[kind] == 1 else f"{kind}:{Path(folder).name}"
            if mode in modes:
                raise RankkitError(
                    f"{modes[mode]} and {folder} would both be served as the mode {mode!r}. "
                    "Fix: pass each index once, from folders with different names"
                )
            modes[mode] = folder
        return modes
