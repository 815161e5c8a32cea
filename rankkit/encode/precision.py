"""Inference precision: the dtype the model weights are cast to for encoding and scoring.

bf16 runs the transformer in bfloat16 (hidden states are pooled in float32 and vectors stay
float32). On CPUs with AVX512-BF16 or AMX and on recent GPUs it is several times faster than fp32
for small encoders (benchmarks/results/precision.md: 2.44x for MiniLM-L6 here) at a cosine of about
0.9999 to the fp32 vectors; rankings can differ where two scores nearly tie.

Training keeps fp32 weights and, with a training precision other than fp32, runs the forward pass
under autocast: 'auto' is mixed precision on CUDA (bf16, or fp16 with loss scaling) and fp32 on a
CPU; 'bf16' is bf16 autocast on CUDA or on a CPU with native bf16 (benchmarks/results/train_precision.md:
1.34x fp32 for MiniLM-L6 as a bi-encoder, 1.46x as a cross-encoder, on this CPU)."""

from __future__ import annotations

import torch

from rankkit.errors import RankkitError

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


def bf16_supported(device: torch.device) -> bool:
    """Whether `device` runs bfloat16 matrix products natively."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        probe = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
        return bool(probe and probe())
    return False


def _require_native_bf16(device: torch.device, option: str) -> None:
    """Refuse `option` bf16 on a device that would only emulate bfloat16 (slower than fp32)."""
    if not bf16_supported(device):
        raise RankkitError(f"{option} bf16: {device} has no native bfloat16 support, so it would be slower "
                           f"than fp32. Fix: use {option} fp32")


def inference_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The weight dtype for `precision` on `device`, refusing bf16 where it would be emulated."""
    if precision not in PRECISIONS:
        raise RankkitError(f"unknown precision {precision!r}. Fix: use one of {', '.join(PRECISIONS)}")
    if precision == "bf16":
        _require_native_bf16(device, "--precision")
    return PRECISIONS[precision]


TRAINING_PRECISIONS = ("auto", "fp32", "bf16")


def training_autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of training's forward passes at `precision` on `device` (None: plain fp32),
    refusing bf16 where it would be emulated."""
    if precision not in TRAINING_PRECISIONS:
        raise RankkitError(f"unknown training precision {precision!r}. Fix: use one of {', '.join(TRAINING_PRECISIONS)}")
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    _require_native_bf16(device, "--train-precision")
    return torch.bfloat16
