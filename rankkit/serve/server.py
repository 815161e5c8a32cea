"""Run the API with uvicorn; SIGTERM/SIGINT stop accepting and let in-flight requests finish."""

from __future__ import annotations

import signal
import sys
import threading

from rankkit.serve.engine import ServeConfig

GRACEFUL_SHUTDOWN_S = 30


def _exit_zero(signum: int, frame: object) -> None:
    sys.exit(0)


def run(config: ServeConfig) -> None:
    import uvicorn

    from rankkit.serve.app import create_app

    app = create_app(config)
    if threading.current_thread() is threading.main_thread():
        # uvicorn handles SIGTERM itself (graceful shutdown), then re-raises it with this handler
        # restored: a server stopped gracefully exits with status 0, not as killed by the signal
        signal.signal(signal.SIGTERM, _exit_zero)
    uvicorn.run(app, host=config.host, port=config.port, log_level="info",
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S, access_log=False)
