"""Device choice: CUDA when present, else CPU, unless the user names one."""

from __future__ import annotations

import os

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


def launcher_device(device: str | None) -> str | None:
    """Under torchrun, device auto (or plain cuda) means this process's own GPU, cuda:LOCAL_RANK,
    so the ranks of one machine do not all run on its first GPU."""
    local_rank = os.environ.get("LOCAL_RANK")
    under_torchrun = local_rank is not None and local_rank.isdigit()
    if device in (None, "auto", "cuda") and under_torchrun and torch.cuda.is_available():
        return f"cuda:{int(local_rank) % torch.cuda.device_count()}"
    return device
