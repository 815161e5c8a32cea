"""Run the API with uvicorn, with limits on every connection and a bounded shutdown.

SIGTERM/SIGINT: the server stops accepting connections and lets in-flight requests finish for
up to `graceful_timeout_s`; requests still running then are cancelled and answered with the
JSON 503 `shutting_down` (see app.Guard), and the process exits at once even if a worker thread
is still inside a batch (the batch's requests were answered; its result would go nowhere)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import Any

from rankkit.errors import RankkitError
from rankkit.serve.config import ServeConfig
from rankkit.serve.engine import SearchEngine

log = logging.getLogger("rankkit.serve")


def _exit_zero(signum: int, frame: object) -> None:
    sys.exit(0)


def uvicorn_config(app: Any, config: ServeConfig) -> Any:
    """uvicorn's own limits where it has them (header bytes, idle keep-alive, concurrency, the
    shutdown grace); the h11 protocol subclass adds the header timeout and half-close."""
    import uvicorn

    from rankkit.serve.protocol import protocol_class

    return uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        log_level="info",
        access_log=False,
        http=protocol_class(config.client_timeout_s),
        h11_max_incomplete_event_size=config.max_header_bytes,
        timeout_keep_alive=config.keep_alive_s,
        limit_concurrency=config.max_connections,
        timeout_graceful_shutdown=config.graceful_timeout_s,
    )


def busy_workers() -> list[str]:
    """Worker threads still inside a batch (their names start with rankkit-, see engine.py)."""
    return [t.name for t in threading.enumerate() if t.name.startswith("rankkit-") and t.is_alive()]


def load_failure(exc: Exception) -> RankkitError:
    """The error `rankkit serve` exits with when the background load failed: rankkit's own (the
    one-line message `rankkit search` gives for the same file), or an unexpected one, whose
    traceback is logged."""
    if isinstance(exc, RankkitError):
        return exc
    log.error("loading failed", exc_info=exc)
    reason = (str(exc).strip().splitlines() or [""])[0][:300]
    return RankkitError(
        f"loading the indexes and models failed ({type(exc).__name__}: {reason}). "
        "Fix: check the files the traceback above names, then start the server again"
    )


def run(config: ServeConfig, engine: SearchEngine | None = None) -> None:
    """Serve until SIGTERM/SIGINT (exit status 0). A server that did not start, or whose
    background load failed (a file damaged within its recorded size: found by a full load, not
    by check_startup), stops with its RankkitError: up or not started, never up and failing."""
    import uvicorn

    from rankkit.serve.app import create_app

    failed: list[Exception] = []

    def stop(exc: Exception) -> None:
        failed.append(exc)
        server.should_exit = True

    server = uvicorn.Server(uvicorn_config(create_app(config, engine, on_load_error=stop), config))
    if threading.current_thread() is threading.main_thread():
        # uvicorn handles SIGTERM itself (graceful shutdown), then re-raises it with this handler
        # restored: a server stopped gracefully exits with status 0, not as killed by the signal
        signal.signal(signal.SIGTERM, _exit_zero)
    try:
        server.run()
    finally:
        busy = busy_workers()
        if busy and not failed:  # a thread of a cancelled batch would hold the process until the batch ends
            log.warning("exiting with %d worker thread(s) still in a batch past the grace period", len(busy))
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0 if server.started else 2)
    if failed:
        raise load_failure(failed[0])
    if not server.started:  # uvicorn logged why (e.g. the port was taken after check_port)
        raise RankkitError(
            f"{config.host}:{config.port}: the server did not start (see the error above). "
            "Fix: choose another --port, or stop the server already using it"
        )
