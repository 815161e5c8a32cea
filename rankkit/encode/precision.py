"""Precision: the number format a model computes in, for inference and for training.

'auto' (every command's default) is bf16 where the device runs bfloat16 natively (CPUs with
AVX512-BF16 or AMX, recent GPUs) and fp32 elsewhere, so no command is refused on a CPU without
bf16. bf16 inference casts the transformer's weights (hidden states are pooled in float32 and vectors
stay float32): 2.44x fp32 for MiniLM-L6 on a CPU with AVX512-BF16 (benchmarks/results/precision.md)
at a cosine of about 0.9999 to the fp32 vectors; rankings can differ where two scores nearly tie.
Training keeps fp32 weights and runs the forward pass under bf16 autocast (1.34x fp32 for MiniLM-L6
as a bi-encoder, 1.46x as a cross-encoder: benchmarks/results/train_precision.md); on a CUDA device
without bf16, auto trains in fp16 with loss scaling. Explicit bf16 is refused where it would be
emulated (slower than fp32). RANKKIT_NATIVE_BF16=0 makes every device count as one without native
bf16, as on an AMD Zen 3."""

from __future__ import annotations

import os
import sys
import typing

import torch

from rankkit.errors import RankkitError
from rankkit.options import Precision

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}
CHOICES: tuple[str, ...] = typing.get_args(Precision)  # auto, fp32, bf16
NATIVE_BF16_ENV = "RANKKIT_NATIVE_BF16"  # "0": treat every device as one without native bf16
_announced: set[str] = set()


def hardware_bf16(device: torch.device) -> bool:
    """Whether `device` runs bfloat16 matrix products natively."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        probe = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
        return bool(probe and probe())
    return False


def bf16_supported(device: torch.device) -> bool:
    """Whether rankkit runs bf16 on `device`: natively there, and not turned off by RANKKIT_NATIVE_BF16=0."""
    return os.environ.get(NATIVE_BF16_ENV) != "0" and hardware_bf16(device)


def resolve_precision(precision: str, device: torch.device) -> str:
    """'fp32' or 'bf16' for `precision` on `device`: auto is bf16 where the device runs it natively,
    else fp32 (said once per process and device); bf16 is refused where it would be emulated."""
    if precision not in CHOICES:
        raise RankkitError(f"unknown precision {precision!r}. Fix: use one of {', '.join(CHOICES)}")
    native = bf16_supported(device)
    if precision == "bf16" and not native:
        raise RankkitError(
            f"--precision bf16: {device} has no native bfloat16 support, so it would be slower "
            "than fp32. Fix: use --precision auto or fp32"
        )
    if precision != "auto":
        return precision
    chosen = "bf16" if native else "fp32"
    if str(device) not in _announced:
        _announced.add(str(device))
        why = "native bfloat16" if native else "no native bfloat16"
        print(f"precision auto: {chosen} on {device} ({why})", file=sys.stderr)
    return chosen


def inference_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The weight dtype for `precision` on `device`."""
    return PRECISIONS[resolve_precision(precision, device)]


def training_autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of training's forward passes at `precision` on `device` (None: plain fp32).
    On CUDA, auto is mixed precision: bf16 where supported, else fp16 with loss scaling."""
    if device.type == "cuda" and precision == "auto" and not bf16_supported(device):
        return torch.float16
    return None if resolve_precision(precision, device) == "fp32" else torch.bfloat16
