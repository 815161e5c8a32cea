"""Inference precision: the dtype the model weights are cast to for encoding and scoring.

bf16 runs the transformer in bfloat16 (hidden states are pooled in float32 and vectors stay
float32). On CPUs with AVX512-BF16 or AMX and on recent GPUs it is several times faster than fp32
for small encoders (benchmarks/results/precision.md: 2.44x for MiniLM-L6 here) at a cosine of about
0.9999 to the fp32 vectors; rankings can differ where two scores nearly tie. Training always runs
in fp32 (mixed precision on CUDA)."""

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


def inference_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The weight dtype for `precision` on `device`, refusing bf16 where it would be emulated."""
    if precision not in PRECISIONS:
        raise RankkitError(f"unknown precision {precision!r}. Fix: use one of {', '.join(PRECISIONS)}")
    if precision == "bf16" and not bf16_supported(device):
        raise RankkitError(f"--precision bf16: {device} has no native bfloat16 support, so it would be slower "
                           "than fp32. Fix: use --precision fp32")
    return PRECISIONS[precision]
