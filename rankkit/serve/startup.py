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
        raise RankkitError("nothing to serve. Fix: pass --index INDEX (-i, once per index), or --sentiment-model DIR")


def check_startup(config: ServeConfig) -> None:
    """Everything the server is asked to serve exists and fits, checked as `rankkit search` checks
    it (the same one-line errors): at least one index or model, a usable API key, rankkit indexes
    of registered kinds, none given twice, each index's files (sizes as its manifest records them)
    and what its kind checks before serving (a query model's folder), and the model folders it
    will load (config.json and the weights' headers). What then loads in the
    background is slow and rarely fails (a file damaged within its recorded size, a model's
    weights that do not load): if it does, the server stops with exit status 2 (see server.run)."""
    from pathlib import Path

    from rankkit.encode.models import resolve_model_dir
    from rankkit.index.integrity import check_sizes
    from rankkit.index.kinds import index_kind
    from rankkit.index.manifest import Manifest

    check_something_to_serve(config)
    check_api_key(config.api_key)
    query = config.query_options()
    for folder in config.index_modes.values():  # refuses a folder that is no index, or one given twice
        manifest = Manifest.read(folder)
        kind = index_kind(manifest.kind, folder)
        check_sizes(folder, manifest)
        kind.check_served(Path(folder), manifest, query)
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
