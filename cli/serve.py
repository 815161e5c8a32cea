"""`rankkit serve` (HTTP API) and `rankkit query` (its client)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from rankkit.cli.errors import friendly_errors
from rankkit.cli.options import PRECISION_HELP, Precision
from rankkit.errors import RankkitError


@friendly_errors
def serve(
    index: Optional[Path] = typer.Option(None, help="Dense index folder."),
    bm25_index: Optional[Path] = typer.Option(None, help="BM25 index folder."),
    reranker: Optional[str] = typer.Option(None, help="Cross-encoder folder for reranking."),
    model: Optional[str] = typer.Option(None, help="Dense query model (default: the index manifest's)."),
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8000),
    api_key: Optional[str] = typer.Option(None, envvar="RANKKIT_API_KEY", help="Require this X-API-Key header."),
    max_k: int = typer.Option(1000),
    max_query_chars: int = typer.Option(1000),
    max_batch_queries: int = typer.Option(64),
    max_body_bytes: int = typer.Option(1_000_000),
    batch_wait_ms: float = typer.Option(
        3.0, help="Longest wait to fill a dense micro-batch; it ends early once as many queries as were "
                  "recently in flight have arrived."),
    batch_max: int = typer.Option(32, help="Largest micro-batch."),
    max_queue: int = typer.Option(256, help="Waiting queries per worker before answering 503."),
    texts: bool = typer.Option(True, help="Load passage texts (needed for text in results and reranking)."),
    device: Optional[str] = typer.Option(None, help="auto (default), cpu or cuda."),
    precision: Precision = typer.Option(Precision.fp32, help=PRECISION_HELP),
    sentiment_model: Optional[Path] = typer.Option(None, help="Sentiment model folder: serves POST /sentiment."),
) -> None:
    """Serve indexes over HTTP: /search, /search/batch, /rerank, /sentiment, /health, /metrics, /docs, and a page at /."""
    from rankkit.encode.device import choose_device
    from rankkit.encode.precision import inference_dtype
    from rankkit.index.manifest import Manifest
    from rankkit.serve.engine import ServeConfig
    from rankkit.serve.server import run

    for folder in (index, bm25_index):
        if folder is not None:
            Manifest.read(folder)  # fail fast, before binding the port
    if sentiment_model is not None:
        from rankkit.sentiment.model import sentiment_model_folder

        sentiment_model = sentiment_model_folder(sentiment_model)  # fail fast, before binding the port
    if index is None and bm25_index is None and sentiment_model is None:
        raise RankkitError("nothing to serve. Fix: pass --index DENSE_INDEX and/or --bm25-index BM25_INDEX "
                           "(or --sentiment-model DIR)")
    inference_dtype(precision.value, choose_device(device))  # fail fast, before binding the port
    run(ServeConfig(index=str(index) if index else None, bm25_index=str(bm25_index) if bm25_index else None,
                    reranker=reranker, model=model, host=host, port=port, api_key=api_key, max_k=max_k,
                    max_query_chars=max_query_chars, max_batch_queries=max_batch_queries,
                    max_body_bytes=max_body_bytes, batch_wait_ms=batch_wait_ms, batch_max=batch_max,
                    max_queue=max_queue, texts=texts, device=device, precision=precision.value,
                    sentiment_model=str(sentiment_model) if sentiment_model else None))


@friendly_errors
def query(
    text: str = typer.Argument(..., help="The query."),
    url: str = typer.Option("http://127.0.0.1:8000", help="Server URL."),
    k: int = typer.Option(10),
    mode: Optional[str] = typer.Option(None, help="bm25, dense or hybrid."),
    rerank: bool = typer.Option(False),
    api_key: Optional[str] = typer.Option(None, envvar="RANKKIT_API_KEY"),
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
