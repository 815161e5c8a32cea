"""Options shared by several commands."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rankkit.retrieve.fusion import FusionConfig


class Precision(str, Enum):
    fp32 = "fp32"
    bf16 = "bf16"


PRECISION_HELP = ("Model precision for encoding/scoring: fp32, or bf16 (about 2.4x faster on CPUs with "
                  "AVX512-BF16/AMX and on recent GPUs; vectors within ~1e-4 cosine of fp32).")


class Fusion(str, Enum):
    rrf = "rrf"
    convex = "convex"
    zscore = "zscore"


FUSION_HELP = ("Hybrid: rrf (reciprocal rank), convex (alpha * dense + (1 - alpha) * BM25 over min-max "
               "normalised scores) or zscore (the same over z-scores). Default: --fusion-config's, else zscore.")
ALPHA_HELP = "Hybrid convex/zscore: the dense list's weight (BM25 gets 1 - alpha). Default 0.65."
FUSION_DEPTH_HELP = "Hybrid: hits each retriever contributes before fusion (default 1000)."
FUSION_CONFIG_HELP = "Hybrid: a fusion.json written by `rankkit tune fusion`; the flags above override it."


def fusion_config(fusion: Fusion | None, alpha: float | None, depth: int | None,
                  config_path: Path | None) -> FusionConfig:
    """The fusion settings: the config file's (or the defaults), with the flags given on top."""
    from rankkit.retrieve.fusion import FusionConfig

    base = FusionConfig.read(config_path) if config_path is not None else FusionConfig()
    return base.replace(method=fusion.value if fusion else None, alpha=alpha, depth=depth)
