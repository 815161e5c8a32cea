"""Options shared by several commands."""

from enum import Enum

from rankkit.mining.export import EXPORT_FORMATS


class Precision(str, Enum):
    fp32 = "fp32"
    bf16 = "bf16"


ExportFormat = Enum("ExportFormat", {name: name for name in EXPORT_FORMATS}, type=str)

NPROBE_HELP = "Dense IVF index: inverted lists visited per query (default: tuned at build, in the manifest)."
EF_SEARCH_HELP = "Dense HNSW index: efSearch, the candidate queue per query (default: tuned at build, in the manifest)."
QUERY_PROMPT_HELP = "Dense: prompt prepended to queries (default: the model's own, from config_sentence_transformers.json)."

PRECISION_HELP = ("Model precision for encoding/scoring: fp32, or bf16 (about 2.4x faster on CPUs with "
                  "AVX512-BF16/AMX and on recent GPUs; vectors within ~1e-4 cosine of fp32).")
