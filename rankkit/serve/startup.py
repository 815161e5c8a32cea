"""Checks `rankkit serve` runs before binding the port, so a misconfigured server fails at once
with one line instead of binding, printing a traceback and staying up half-broken."""

from __future__ import annotations

import socket
import sys

from rankkit.errors import RankkitError
from rankkit.serve.config import ServeConfig

KEY_HINT = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


def check_api_key(key: str | None) -> None:
    """None serves without a key; an empty key (which would switch authentication off without a
    word) or one with characters outside visible ASCII (which no HTTP header carries as typed,
    so it could never match) is refused."""
    if key is None:
        return
    if not key:
        raise RankkitError(
            "the API key is empty (--api-key or RANKKIT_API_KEY), which would turn authentication "
            "off. Fix: pass a non-empty key, or unset RANKKIT_API_KEY to serve without one"
        )
    bad = next((c for c in key if not 33 <= ord(c) <= 126), None)
    if bad is not None:
        raise RankkitError(
            f"the API key contains {ascii(bad)}: only visible ASCII (letters, digits, punctuation; "
            f"no spaces) can be sent in the X-API-Key header, so it could never match. "
            f"Fix: use a key such as the output of `{KEY_HINT}`"
        )


def check_something_to_serve(config: ServeConfig) -> None:
    """At least one index or a sentiment model."""
    if not config.indexes and config.sentiment_model is None:
        raise RankkitError(
            "nothing to serve. Fix: pass --index INDEX (-i; a dense and/or a BM25 index), or --sentiment-model DIR"
        )


def check_startup(config: ServeConfig) -> None:
    """Everything the server is asked to serve exists and fits, checked as `rankkit search` checks
    it (the same one-line errors): at least one index or model, a usable API key, rankkit indexes
    of which no two share a kind, each index's files (sizes as its manifest records them), and the
    model folders it will load (config.json and the weights' headers). What then loads in the
    background is slow and rarely fails (a file damaged within its recorded size, a model's
    weights that do not load): if it does, the server stops with exit status 2 (see server.run)."""
    from rankkit.encode.models import resolve_model_dir
    from rankkit.index.integrity import check_sizes
    from rankkit.index.manifest import Manifest

    check_something_to_serve(config)
    check_api_key(config.api_key)
    for kind, folder in config.index_by_kind.items():  # refuses a folder that is no index, or two of one kind
        manifest = Manifest.read(folder)
        check_sizes(folder, manifest)
        if kind == "dense":
            resolve_model_dir(config.model or manifest.query_model or manifest.model)
    if config.reranker is not None:
        from rankkit.encode.dev_record import describe_reranker

        # a damaged record is refused here; the line says whether the reranker beat its first stage
        print(f"reranker {config.reranker}: {describe_reranker(resolve_model_dir(config.reranker))}", file=sys.stderr)


def check_port(host: str, port: int) -> None:
    """The server can listen on host:port (nothing else listens there), so a port in use is one
    error and a non-zero exit, not a log line after the models loaded."""
    try:
        family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise RankkitError(f"--host {host}: not an address of this machine ({exc.strerror}). Fix: pass one") from None
    with socket.socket(family, kind) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            raise RankkitError(
                f"{host}:{port}: cannot listen there ({exc.strerror}). "
                "Fix: choose another --port, or stop the server already using it"
            ) from None
