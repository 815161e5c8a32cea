"""Score fusion of ranked lists, as pyserini's hybrid searchers offer it; one code path for
`rankkit search`, `rankkit serve` and `rankkit quickstart`.

- rrf: reciprocal rank fusion (Cormack, Clarke and Buettcher, SIGIR 2009),
  score(d) = sum_i w_i / (rrf_k + rank_i(d)); a document missing from a list gets nothing from it.
- convex: alpha * dense + (1 - alpha) * bm25 over each query's min-max normalised scores
  (Bruch, Gai and Ingber, "An analysis of fusion functions for hybrid retrieval", TOIS 2023).
- zscore: the same over each query's z-scores (score - mean) / std.

For convex and zscore a document missing from one list is scored as that list's minimum (after
normalisation), as pyserini's HybridSearcher does. A list whose scores are all equal normalises to
0 throughout: it says nothing about the order. Ties are broken by docid, so fusion is deterministic.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Callable, ClassVar, Literal, Sequence

from rankkit.data.files import atomic_write
from rankkit.data.runs import Hit
from rankkit.errors import RankkitError, file_error
from rankkit.options import OptionSpec, option

if TYPE_CHECKING:  # numpy is imported where scores are fused: the CLI reads FusionConfig at start-up
    import numpy as np

FusionMethod = Literal["rrf", "convex", "zscore"]
FUSION_METHODS: tuple[str, ...] = ("rrf", "convex", "zscore")
DEFAULT_RRF_K = 60
DEFAULT_DEPTH = 1000  # hits each retriever contributes, in search, serve and quickstart alike
FUSION_FILE = "fusion.json"


@dataclass(frozen=True)
class FusionConfig:
    """How hybrid search fuses: the method, alpha (the dense list's weight in convex and zscore;
    BM25 gets 1 - alpha), the RRF constant and the depth each retriever contributes.

    The default, zscore at alpha 0.65, had the best mean nDCG@10 over the shared collections' tuning
    queries (benchmarks/results/fusion.md)."""

    panel: ClassVar[str] = "Fusion"
    options_file: ClassVar[OptionSpec] = OptionSpec(
        "Hybrid: a fusion.json written by `rankkit tune fusion`; the fusion options given override it.",
        flags=("--fusion-config",),
    )

    method: FusionMethod = option(
        "zscore",
        "Hybrid: rrf (reciprocal rank), convex (alpha * dense + (1 - alpha) "
        "* BM25 over min-max normalised scores) or zscore (the same over "
        "z-scores).",
        flags=("--fusion",),
    )
    alpha: float = option(
        0.65,
        "Hybrid convex/zscore of one dense and one BM25 index: the dense list's weight (BM25 gets 1 - alpha); other mixes weigh each list 1.",
        low=0,
        high=1,
    )
    rrf_k: int = DEFAULT_RRF_K
    depth: int = option(
        DEFAULT_DEPTH, "Hybrid: hits each retriever contributes before fusion.", low=1, flags=("--fusion-depth",)
    )

    def __post_init__(self) -> None:
        if self.method not in FUSION_METHODS:
            raise RankkitError(f"unknown fusion method {self.method!r}. Fix: use one of {', '.join(FUSION_METHODS)}")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not 0.0 <= self.alpha <= 1.0:
            raise RankkitError(
                f"alpha={self.alpha!r} is not a number in [0, 1]. Fix: give the dense weight as 0 <= alpha <= 1"
            )
        if not all(type(v) is int for v in (self.rrf_k, self.depth)) or self.rrf_k < 0 or self.depth < 1:
            raise RankkitError(f"rrf_k={self.rrf_k}, depth={self.depth}. Fix: use rrf_k >= 0 and depth >= 1")

    def write(self, path: str | Path, **extra: object) -> None:
        """Write as JSON (with `extra` facts, e.g. what it was tuned on), atomically."""
        with atomic_write(path) as handle:
            json.dump({**asdict(self), **extra}, handle, indent=2)
            handle.write("\n")

    @classmethod
    def read(cls, path: str | Path) -> "FusionConfig":
        """Read a fusion.json written by `rankkit tune fusion` (keys other than the config's are kept as notes)."""
        path = Path(path)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RankkitError(
                f"{path}: no such file. Fix: check the path, or write one with `rankkit tune fusion`"
            ) from None
        except json.JSONDecodeError as exc:
            raise file_error(
                path, exc.lineno, f"invalid JSON ({exc.msg})", "write it with `rankkit tune fusion`"
            ) from None
        if not isinstance(record, dict):
            raise file_error(path, None, "not a JSON object", "write it with `rankkit tune fusion`")
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in record.items() if k in known})
        except RankkitError as exc:
            problem, _, fix = str(exc).partition(". Fix: ")
            raise file_error(path, None, f"bad fusion settings: {problem}", fix) from None


def minmax_scores(hits: Sequence[Hit]) -> dict[str, float]:
    """Each hit's score mapped to [0, 1] by the list's minimum and maximum."""
    if not hits:
        return {}
    low, high = min(h.score for h in hits), max(h.score for h in hits)
    spread = high - low
    return {h.docid: (h.score - low) / spread if spread > 0 else 0.0 for h in hits}


def zscore_scores(hits: Sequence[Hit]) -> dict[str, float]:
    """Each hit's score as (score - mean) / std over the list (population std)."""
    if not hits:
        return {}
    mean = sum(h.score for h in hits) / len(hits)
    std = math.sqrt(sum((h.score - mean) ** 2 for h in hits) / len(hits))
    return {h.docid: (h.score - mean) / std if std > 0 else 0.0 for h in hits}


NORMALISERS: dict[str, Callable[[Sequence[Hit]], dict[str, float]]] = {"convex": minmax_scores, "zscore": zscore_scores}


def _best(scores: dict[str, float], k: int) -> list[Hit]:
    ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:k]
    return [Hit(docid, score) for docid, score in ranked]


def rrf_fuse(
    rankings: Sequence[Sequence[Hit]], weights: Sequence[float], k: int, rrf_k: int = DEFAULT_RRF_K
) -> list[Hit]:
    """Fuse ranked hit lists (best first) by weighted reciprocal rank."""
    fused: dict[str, float] = {}
    for hits, weight in zip(rankings, weights, strict=True):
        for rank, hit in enumerate(hits, start=1):
            fused[hit.docid] = fused.get(hit.docid, 0.0) + weight / (rrf_k + rank)
    return _best(fused, k)


def normalise_lists(
    rankings: Sequence[Sequence[Hit]], method: Literal["convex", "zscore"]
) -> tuple[list[str], np.ndarray]:
    """The union of the lists' docids (sorted) and a [lists x docids] matrix of their normalised
    scores, a document missing from a list holding that list's minimum."""
    normalised = [NORMALISERS[method](hits) for hits in rankings]
    docids = sorted({docid for scores in normalised for docid in scores})
    import numpy as np

    matrix = np.zeros((len(normalised), len(docids)))
    for row, scores in zip(matrix, normalised):
        floor = min(scores.values(), default=0.0)
        row[:] = [scores.get(docid, floor) for docid in docids]
    return docids, matrix


def combine_normalised(normalised: tuple[list[str], np.ndarray], weights: Sequence[float], k: int) -> list[Hit]:
    """sum_i w_i * norm_i(d) over the union of the lists, the best k (ties: docid order)."""
    import numpy as np

    docids, matrix = normalised
    if len(weights) != len(matrix):
        raise RankkitError(f"{len(weights)} weights for {len(matrix)} lists. Fix: give one weight per list")
    if not docids:
        return []
    fused = np.asarray(weights, dtype=float) @ matrix
    order = np.argsort(-fused, kind="stable")[:k]  # stable over sorted docids: ties go by docid
    return [Hit(docids[i], float(fused[i])) for i in order]


def normalised_fuse(
    rankings: Sequence[Sequence[Hit]], weights: Sequence[float], k: int, method: Literal["convex", "zscore"] = "convex"
) -> list[Hit]:
    """sum_i w_i * norm_i(d) over the union of the lists; a document missing from list i counts
    as list i's minimum normalised score."""
    return combine_normalised(normalise_lists(rankings, method), weights, k)


def fuse(rankings: Sequence[Sequence[Hit]], weights: Sequence[float], k: int, config: FusionConfig) -> list[Hit]:
    """Fuse the lists by the config's method; `weights` are the lists' weights (for two lists,
    dense and BM25, see fusion_weights)."""
    if config.method == "rrf":
        return rrf_fuse(rankings, weights, k, config.rrf_k)
    return normalised_fuse(rankings, weights, k, config.method)


def fusion_weights(kinds: Sequence[str], config: FusionConfig, weights: Sequence[float] | None = None) -> list[float]:
    """The lists' weights: explicit `weights` when given; for convex and zscore over one dense and
    one BM25 list, alpha for the dense list and 1 - alpha for the BM25 one; else 1 each."""
    if weights is not None:
        if len(weights) != len(kinds):
            raise RankkitError(
                f"{len(weights)} weights for {len(kinds)} retrievers. Fix: pass one --weight per --index"
            )
        return list(weights)
    if config.method != "rrf" and sorted(kinds) == ["bm25", "dense"]:
        return [config.alpha if kind == "dense" else 1.0 - config.alpha for kind in kinds]
    return [1.0] * len(kinds)
