"""`rankkit serve` (HTTP API) and `rankkit query` (its client)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from rankkit.cli.errors import friendly_errors
from rankkit.cli.options import (ALPHA_HELP, AT_LEAST_1, EF_SEARCH_HELP, FUSION_CONFIG_HELP, FUSION_DEPTH_HELP,
                                 FUSION_HELP, GPU_FP16_HELP, GPU_SHARD_HELP, NPROBE_HELP, PRECISION_HELP,
                                 QUERY_PROMPT_HELP, Fusion, Precision, fusion_config, number_check)

API_KEY_ENV = "RANKKIT_API_KEY"


@friendly_errors
def serve(
    index: Optional[Path] = typer.Option(None, help="Dense index folder (from `rankkit index build --kind dense`)."),
    bm25_index: Optional[Path] = typer.Option(None, help="BM25 index folder (from `rankkit index build --kind bm25`)."),
    reranker: Optional[str] = typer.Option(None, help="Cross-encoder folder for reranking (/rerank, rerank: true)."),
    model: Optional[str] = typer.Option(None, help="Dense query model (default: the index manifest's)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, min=1, max=65535, help="TCP port to listen on (1-65535)."),
    api_key: Optional[str] = typer.Option(
        None, envvar=API_KEY_ENV, show_envvar=True,
        help="Require this X-API-Key header on every endpoint but /health, /docs and the page. Visible ASCII, "
             "not empty."),
    max_k: int = typer.Option(1000, min=1, help="Largest k a search may ask for."),
    max_query_chars: int = typer.Option(1000, min=1, help="Longest query, in characters."),
    max_batch_queries: int = typer.Option(64, min=1, help="Most queries in one /search/batch request."),
    max_passages: int = typer.Option(
        256, min=1, help="Most passages in one /rerank request, and the largest rerank_depth of /search."),
    max_body_bytes: int = typer.Option(1_000_000, min=1, help="Largest request body (413 over it)."),
    batch_wait_ms: float = typer.Option(
        3.0, min=0, help="Longest wait to fill a dense micro-batch; it ends early once as many queries as were "
                         "recently in flight have arrived."),
    batch_max: int = typer.Option(32, min=1, help="Largest micro-batch."),
    max_queue: int = typer.Option(256, min=1, help="Waiting queries per worker before answering 503."),
    max_header_bytes: int = typer.Option(
        16_384, min=1024, help="Largest request line + headers in bytes (400 over it; h11's limit)."),
    max_headers: int = typer.Option(100, min=1, help="Most request headers (431 over it)."),
    client_timeout: float = typer.Option(
        10.0, min=0.1, help="Seconds a client has to send the request line and headers (else the connection is "
                            "closed), and again the body (else 408)."),
    keep_alive_timeout: float = typer.Option(5.0, min=0.1, help="Seconds an idle keep-alive connection stays open."),
    max_connections: int = typer.Option(
        1024, min=1, help="Open connections + running requests before new requests get 503 (uvicorn's "
                          "limit_concurrency)."),
    graceful_timeout: float = typer.Option(
        30.0, min=0, help="On SIGTERM/SIGINT, seconds in-flight requests may still finish; those still running "
                          "are then answered 503 shutting_down and the process exits."),
    texts: bool = typer.Option(True, help="Load passage texts (needed for text in results and reranking)."),
    device: Optional[str] = typer.Option(None, help="auto (default), cpu or cuda."),
    precision: Precision = typer.Option(Precision.fp32, help=PRECISION_HELP),
    nprobe: Optional[int] = typer.Option(None, min=1, help=NPROBE_HELP),
    ef_search: Optional[int] = typer.Option(None, min=1, help=EF_SEARCH_HELP),
    query_prompt: Optional[str] = typer.Option(None, help=QUERY_PROMPT_HELP),
    gpu_shard: bool = typer.Option(False, help=GPU_SHARD_HELP),
    gpu_fp16: bool = typer.Option(False, help=GPU_FP16_HELP),
    fusion: Optional[Fusion] = typer.Option(None, help=FUSION_HELP),
    alpha: Optional[float] = typer.Option(None, callback=number_check(0, 1), help=ALPHA_HELP),
    fusion_depth: Optional[int] = typer.Option(None, callback=AT_LEAST_1, help=FUSION_DEPTH_HELP),
    fusion_config_file: Optional[Path] = typer.Option(None, "--fusion-config", help=FUSION_CONFIG_HELP),
    sentiment_model: Optional[Path] = typer.Option(None, help="Sentiment model folder: serves POST /sentiment."),
) -> None:
    """Serve indexes over HTTP: /search, /search/batch, /rerank, /sentiment, /health, /metrics, /docs, and a page at /."""
    from rankkit.encode.device import choose_device
    from rankkit.encode.precision import inference_dtype
    from rankkit.serve.config import ServeConfig
    from rankkit.serve.server import run
    from rankkit.serve.startup import check_startup

    if api_key is None and API_KEY_ENV in os.environ:  # click reads an empty variable as unset
        api_key = os.environ[API_KEY_ENV]
    if sentiment_model is not None:
        from rankkit.sentiment.model import sentiment_model_folder

        sentiment_model = sentiment_model_folder(sentiment_model)  # fail fast, before binding the port
    config = ServeConfig(index=str(index) if index else None, bm25_index=str(bm25_index) if bm25_index else None,
                         reranker=reranker, model=model, host=host, port=port, api_key=api_key, max_k=max_k,
                         max_query_chars=max_query_chars, max_batch_queries=max_batch_queries,
                         max_passages=max_passages, max_body_bytes=max_body_bytes, batch_wait_ms=batch_wait_ms,
                         batch_max=batch_max, max_queue=max_queue, max_header_bytes=max_header_bytes,
                         max_headers=max_headers, client_timeout_s=client_timeout, keep_alive_s=keep_alive_timeout,
                         max_connections=max_connections, graceful_timeout_s=graceful_timeout, texts=texts,
                         device=device, precision=precision.value, nprobe=nprobe, ef_search=ef_search,
                         query_prompt=query_prompt, gpu_shard=gpu_shard, gpu_fp16=gpu_fp16,
                         fusion=fusion_config(fusion, alpha, fusion_depth, fusion_config_file),
                         sentiment_model=str(sentiment_model) if sentiment_model else None)
    check_startup(config)  # fail fast, before binding the port
    inference_dtype(precision.value, choose_device(device))  # fail fast, before binding the port
    run(config)


@friendly_errors
def query(
    text: str = typer.Argument(..., help="The query."),
    url: str = typer.Option("http://127.0.0.1:8000", help="Server URL."),
    k: int = typer.Option(10, "--k", "-k", min=1, help="Hits to show."),
    mode: Optional[str] = typer.Option(None, help="bm25, dense or hybrid (default: the server's first)."),
    rerank: bool = typer.Option(False, help="Rerank the hits with the server's cross-encoder."),
    api_key: Optional[str] = typer.Option(None, envvar=API_KEY_ENV, show_envvar=True,
                                          help="The server's API key (X-API-Key)."),
) -> None:
    """Query a running rankkit server and print the hits."""
    from rankkit.serve.client import Client

    with Client(url, api_key) as client:
        answer = client.search(text, k=k, mode=mode, rerank=rerank, text=True)
    table = Table(title=f"{answer['mode']}{' + rerank' if answer['reranked'] else ''}: {answer['query']}")
    for column in ("rank", "docid", "score", "text"):
        table.add_column(column, overflow="fold")
    for hit in answer["hits"]:
        table.add_row(str(hit["rank"]), hit["docid"], f"{hit['score']:.4f}", (hit.get("text") or "")[:120])
    Console().print(table)
