"""Run the API with uvicorn; SIGTERM/SIGINT stop accepting and let in-flight requests finish."""

from __future__ import annotations

from rankkit.serve.engine import ServeConfig

GRACEFUL_SHUTDOWN_S = 30


def run(config: ServeConfig) -> None:
    import uvicorn

    from rankkit.serve.app import create_app

    uvicorn.run(create_app(config), host=config.host, port=config.port, log_level="info",
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S, access_log=False)
