"""Package attributes imported on first use, so that importing a package (as the CLI does at
start-up, for its configs) does not import torch."""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_attributes(package: str, modules: dict[str, str]) -> Callable[[str], Any]:
    """A module-level __getattr__ (PEP 562) that imports each name of `modules` (name -> module)
    from its module the first time it is asked for."""

    def __getattr__(name: str) -> Any:
        if name not in modules:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(modules[name]), name)

    return __getattr__
