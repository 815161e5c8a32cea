"""Options shared by several commands."""

from enum import Enum


class Precision(str, Enum):
    fp32 = "fp32"
    bf16 = "bf16"


PRECISION_HELP = ("Model precision for encoding/scoring: fp32, or bf16 (about 2.4x faster on CPUs with "
                  "AVX512-BF16/AMX and on recent GPUs; vectors within ~1e-4 cosine of fp32).")
