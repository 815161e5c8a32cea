"""Evaluation: ir-measures presets (msmarco, trec-dl), per-query values, paired significance tests."""

from rankkit.eval.compare import Comparison, paired_compare
from rankkit.eval.measures import PRESETS, Evaluation, evaluate, resolve_measures

__all__ = ["PRESETS", "Comparison", "Evaluation", "evaluate", "paired_compare", "resolve_measures"]
