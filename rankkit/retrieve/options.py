"""The option groups of searching an index (dense query settings, BM25's parameters and RM3), and
QueryOptions, the groups a command hands to every index it opens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from rankkit.options import Inference, option

Group = TypeVar("Group")


@dataclass(frozen=True, kw_only=True)
class DenseQuery(Inference):
    """How queries are encoded and a dense index is searched (search, serve, mine, tune fusion)."""

    panel: ClassVar[str] = "Dense search"

    model: str | None = option(None, "Dense: query model (default: the one the index manifest names).")
    nprobe: int | None = option(
        None, "Dense IVF index: inverted lists visited per query (default: tuned at build, in the manifest).", low=1
    )
    ef_search: int | None = option(
        None,
        "Dense HNSW index: efSearch, the candidate queue per query (default: tuned at build, in the manifest).",
        low=1,
    )
    query_prompt: str | None = option(
        None, "Dense: prompt prepended to queries (default: the model's own, from config_sentence_transformers.json)."
    )
    gpu_shard: bool = option(
        False,
        "Dense index on several GPUs: split the vectors over them (1/N each) instead "
        "of a full copy on each. Without a GPU: ignored, with a warning.",
    )
    gpu_fp16: bool = option(
        False,
        "Dense index on the GPUs: store the vectors in float16 (half the memory; "
        "scores differ slightly from fp32). Without a GPU: ignored, with a warning.",
    )

    def search_params(self) -> dict[str, int]:
        """The search parameters set here, by their FAISS names."""
        return {
            name: value for name, value in (("nprobe", self.nprobe), ("efSearch", self.ef_search)) if value is not None
        }


@dataclass(frozen=True, kw_only=True)
class BM25Params:
    """BM25's parameters (pyserini's MS MARCO passage baselines by default)."""

    panel: ClassVar[str] = "BM25"

    k1: float = option(0.9, "BM25 k1: term-frequency saturation.", low=0)
    b: float = option(0.4, "BM25 b: document-length normalisation.", low=0, high=1)
    rm3: bool = option(False, "BM25: expand each query with RM3 pseudo-relevance feedback (pyserini's RM3).")
    rm3_fb_terms: int = option(10, "RM3: expansion terms taken from the feedback documents.", low=1)
    rm3_fb_docs: int = option(10, "RM3: top documents used as feedback.", low=1)
    rm3_original_query_weight: float = option(0.5, "RM3: weight of the original query terms.", low=0, high=1)


class QueryOptions:
    """The query option groups a command was given (DenseQuery, BM25Params, ...): each index kind
    takes the group it needs, or that group's defaults when the command has none. A config that
    inherits a group (a MiningRecipe is a DenseQuery) counts as that group."""

    def __init__(self, *groups: Any):
        self.groups = groups

    def get(self, group: type[Group]) -> Group:
        return next((given for given in self.groups if isinstance(given, group)), None) or group()
