"""The negative-mining core shared by ranker training, CET, distillation and sentiment."""

from rankkit.mining.candidates import Candidate, candidates_from_retriever, candidates_from_run, merge_candidates
from rankkit.mining.mine import MiningConfig, false_negative_rate, mine
from rankkit.mining.minedset import MinedQuery, MinedSet
from rankkit.mining.pooling import with_pooling_provenance
from rankkit.mining.strategies import (
    AdaptiveThreshold,
    MarginFilter,
    QueryContext,
    RandomN,
    RankWindow,
    SelfAdversarial,
    SimANS,
    TeacherDenoise,
    TopN,
)

__all__ = [
    "AdaptiveThreshold",
    "Candidate",
    "MarginFilter",
    "MinedQuery",
    "MinedSet",
    "MiningConfig",
    "QueryContext",
    "RandomN",
    "RankWindow",
    "SelfAdversarial",
    "SimANS",
    "TeacherDenoise",
    "TopN",
    "candidates_from_retriever",
    "candidates_from_run",
    "false_negative_rate",
    "merge_candidates",
    "mine",
    "with_pooling_provenance",
]
