"""HTTP serving (the `serve` extra: FastAPI + uvicorn) and its client."""

from rankkit.serve.client import Client
from rankkit.serve.config import ServeConfig

__all__ = ["Client", "ServeConfig"]
