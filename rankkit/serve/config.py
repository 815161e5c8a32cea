"""The server's configuration: what it loads, its limits and its connection settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from rankkit.retrieve.fusion import FusionConfig


@dataclass(frozen=True)
class ServeConfig:
    index: str | None = None  # dense index folder
    bm25_index: str | None = None
    reranker: str | None = None  # cross-encoder folder
    model: str | None = None  # dense query model; default: the one in the index manifest
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None  # when set, every endpoint but /health needs the X-API-Key header
    max_k: int = 1000
    max_query_chars: int = 1000
    max_batch_queries: int = 64
    max_passages: int = 256
    max_body_bytes: int = 1_000_000
    batch_wait_ms: float = 3.0
    batch_max: int = 32
    max_queue: int = 256  # queries waiting per worker before the server answers 503
    # connections (rankkit.serve.server): limits and timeouts a slow or hostile client meets
    max_header_bytes: int = 16_384  # request line + headers (h11's max_incomplete_event_size)
    max_headers: int = 100
    client_timeout_s: float = 10.0  # to send the request line and headers, and again the body
    keep_alive_s: float = 5.0  # idle keep-alive connections are closed after this
    max_connections: int = 1024  # open connections + running requests; over it, 503 (uvicorn limit_concurrency)
    graceful_timeout_s: float = 30.0  # on SIGTERM, in-flight work past this is cancelled (JSON 503)
    fusion: FusionConfig = field(default_factory=FusionConfig)  # hybrid: the same fusion as `rankkit search`
    texts: bool = True  # load passage texts from the indexes' corpus files to return them
    device: str | None = None
    precision: str = "fp32"  # query encoder and reranker: fp32 | bf16
    nprobe: int | None = None  # dense IVF / HNSW search parameters (default: the manifest's)
    ef_search: int | None = None
    gpu_shard: bool = False  # dense index on several GPUs: 1/N of the vectors on each (else a replica on each)
    gpu_fp16: bool = False  # dense index stored in float16 on the GPUs
    query_prompt: str | None = None  # dense query prompt (default: the model's)
    sentiment_model: str | None = None  # folder from `rankkit sentiment train`: serves POST /sentiment

    @property
    def hybrid_depth(self) -> int:
        """Hits each retriever contributes to a hybrid query (as in `rankkit search`)."""
        return self.fusion.depth
