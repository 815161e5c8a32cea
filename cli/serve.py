"""`rankkit serve` (HTTP API) and `rankkit query` (its client)."""

from __future__ import annotations

import os
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from rankkit.cli.errors import friendly_errors
from rankkit.cli.groups import with_options
from rankkit.serve.config import API_KEY_ENV, ServeConfig


@friendly_errors
@with_options
def serve(config: ServeConfig) -> None:
    """Serve indexes over HTTP: /search, /search/batch, /rerank, /sentiment, /health, /metrics, /docs, and a page at /."""
    import dataclasses

    from rankkit.encode.device import choose_device
    from rankkit.encode.precision import resolve_precision
    from rankkit.serve.server import run
    from rankkit.serve.startup import check_port, check_startup

    if config.api_key is None and API_KEY_ENV in os.environ:  # an empty variable is refused, not ignored
        config = dataclasses.replace(config, api_key=os.environ[API_KEY_ENV])
    if config.sentiment_model is not None:
        from rankkit.sentiment.model import sentiment_model_folder

        config = dataclasses.replace(config, sentiment_model=str(sentiment_model_folder(config.sentiment_model)))
    check_startup(config)  # fail fast, before binding the port
    check_port(config.host, config.port)
    resolve_precision(config.precision, choose_device(config.device))
    run(config)


@friendly_errors
def query(
    text: str = typer.Argument(..., help="The query."),
    url: str = typer.Option("http://127.0.0.1:8000", help="Server URL."),
    k: int = typer.Option(10, "--k", "-k", min=1, help="Hits to show."),
    mode: Optional[str] = typer.Option(
        None, help="One of the server's modes (GET /health lists them; default: its first)."
    ),
    rerank: bool = typer.Option(False, help="Rerank the hits with the server's cross-encoder."),
    api_key: Optional[str] = typer.Option(
        None, envvar=API_KEY_ENV, show_envvar=True, help="The server's API key (X-API-Key)."
    ),
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
