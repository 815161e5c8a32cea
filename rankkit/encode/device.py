"""Device choice: CUDA when present, else CPU, unless the user names one."""

from __future__ import annotations

import torch

from rankkit.errors import RankkitError


def choose_device(preferred: str | None = None) -> torch.device:
    if preferred in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if preferred.startswith("cuda") and not torch.cuda.is_available():
        raise RankkitError(f"device {preferred!r} requested but no CUDA GPU is visible. Fix: pass --device cpu")
    try:
        return torch.device(preferred)
    except RuntimeError:
        raise RankkitError(f"unknown device {preferred!r}. Fix: use auto, cpu or cuda[:N]") from None
