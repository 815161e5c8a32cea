"""Options shared by several commands, and the one validator of numeric options."""

from __future__ import annotations

import math
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import typer
from rich.console import Console

if TYPE_CHECKING:
    from rankkit.retrieve.fusion import FusionConfig

from rankkit.mining.export import EXPORT_FORMATS


class Precision(str, Enum):
    fp32 = "fp32"
    bf16 = "bf16"


class TrainPrecision(str, Enum):
    """rankkit.encode.precision.TRAINING_PRECISIONS, spelt out here so the CLI starts without importing torch."""

    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"


ExportFormat = Enum("ExportFormat", {name: name for name in EXPORT_FORMATS}, type=str)

NPROBE_HELP = "Dense IVF index: inverted lists visited per query (default: tuned at build, in the manifest)."
EF_SEARCH_HELP = "Dense HNSW index: efSearch, the candidate queue per query (default: tuned at build, in the manifest)."
GPU_SHARD_HELP = ("Dense index on several GPUs: split the vectors over them (1/N each) instead of a full copy on "
                  "each. Without a GPU: ignored, with a warning.")
GPU_FP16_HELP = ("Dense index on the GPUs: store the vectors in float16 (half the memory; scores differ slightly "
                 "from fp32). Without a GPU: ignored, with a warning.")
QUERY_PROMPT_HELP = "Dense: prompt prepended to queries (default: the model's own, from config_sentence_transformers.json)."

PRECISION_HELP = ("Model precision for encoding/scoring: fp32, or bf16 (about 2.4x faster on CPUs with "
                  "AVX512-BF16/AMX and on recent GPUs; vectors within ~1e-4 cosine of fp32).")
TRAIN_PRECISION_HELP = ("Training precision: auto (mixed precision on CUDA, fp32 on CPU), fp32, or bf16 autocast "
                        "(weights stay fp32; 1.3-1.5x faster than fp32 for MiniLM on a CPU with AVX512-BF16).")


def number_check(low: float | None = None, high: float | None = None, *, low_open: bool = False,
                 high_open: bool = False, integer: bool = False) -> Callable[[Any], Any]:
    """A Typer option callback that refuses, at parse time, values outside [low, high] (open ends
    where asked) and any nan or inf, with the range in the message. Lists (repeated options) are
    checked item by item; None (an absent optional value) passes."""
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        bounds.append(f"{'<' if high_open else '<='} {high:g}")
    wanted = ("an integer" if integer else "a finite number") + (" " + " and ".join(bounds) if bounds else "")

    def check(value: Any) -> Any:
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if item is None:
                continue
            below = low is not None and (item <= low if low_open else item < low)
            above = high is not None and (item >= high if high_open else item > high)
            if not math.isfinite(item) or below or above:
                raise typer.BadParameter(f"{item:g} is out of range. Fix: pass {wanted}")
        return value

    return check


AT_LEAST_1 = number_check(1, integer=True)
AT_LEAST_0 = number_check(0, integer=True)
POSITIVE = number_check(0, low_open=True)
NON_NEGATIVE = number_check(0)
FINITE = number_check()


def stdout_console() -> Console:
    """A console for tables on stdout: the terminal's width on a terminal; piped or redirected
    (`rankkit eval ... | cat`), wide enough that run and measure names are never cut."""
    console = Console()
    return console if console.is_terminal else Console(width=10_000)


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


DATA_HELP = ("Collection folder (collection.tsv, queries.tsv, qrels.txt) or BEIR folder (corpus.jsonl, "
             "queries.jsonl, qrels/SPLIT.tsv): its files stand in for the file options not given.")


def collection_files(data: Path | None, split: str | None, split_flag: str = "--split") -> Any:
    """The CollectionPaths / BeirPaths of --data (with its qrels split), or None without --data;
    a split without a folder is refused."""
    from rankkit.data.collection import collection
    from rankkit.errors import RankkitError

    if data is None:
        if split is not None:
            raise RankkitError(f"{split_flag} {split} names a qrels split of a BEIR folder, but no folder was given. "
                               f"Fix: pass --data DIR with {split_flag}")
        return None
    return collection(data, split)


def required_files(**given: str | None) -> dict[str, str]:
    """The file options (name -> path) once --data filled them in: a missing one is refused, naming
    its flag."""
    from rankkit.errors import RankkitError

    missing = [f"--{name.replace('_', '-')}" for name, value in given.items() if value is None]
    if missing:
        raise RankkitError(f"missing {', '.join(missing)}. Fix: pass {' and '.join(missing)}, or --data DIR "
                           "(a collection or BEIR folder) whose files stand in for them")
    return {name: str(value) for name, value in given.items()}
