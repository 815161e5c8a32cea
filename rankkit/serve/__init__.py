"""HTTP serving (the `serve` extra: FastAPI + uvicorn) and its client."""

from rankkit.lazy import lazy_attributes
from rankkit.serve.config import ServeConfig

__getattr__ = lazy_attributes(__name__, {"Client": "rankkit.serve.client"})
__all__ = ["Client", "ServeConfig"]
