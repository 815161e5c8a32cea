"""Evaluation on ir-measures: presets, any measure by name, per-query values.

Queries judged in the qrels but absent from a run score 0 (as `trec_eval -c` does), so a run
cannot look better by skipping hard queries; queries without judgments are not evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import ir_measures

from rankkit.data.qrels import Qrels
from rankkit.data.runs import Run
from rankkit.errors import RankkitError

PRESETS: dict[str, tuple[str, ...]] = {
    "msmarco": ("RR@10", "R@1000"),
    # as the TREC Deep Learning track reports: binary measures count grade >= 2 as relevant
    "trec-dl": ("nDCG@10", "AP(rel=2)", "R(rel=2)@1000"),
}


@dataclass(frozen=True)
class Evaluation:
    """Mean and per-query value of each measure, keyed by the measure's name."""

    measures: tuple[str, ...]
    per_query: dict[str, dict[str, float]]  # measure -> qid -> value
    missing_queries: tuple[str, ...]  # judged, absent from the run: scored 0

    @property
    def aggregate(self) -> dict[str, float]:
        return {m: sum(v.values()) / len(v) if v else 0.0 for m, v in self.per_query.items()}


def resolve_measures(preset: str | None, names: Sequence[str] = ()) -> list[ir_measures.Measure]:
    """The measures of a preset plus any named ones, parsed by ir-measures."""
    if preset is not None and preset not in PRESETS:
        raise RankkitError(f"unknown preset {preset!r}. Fix: use one of {', '.join(PRESETS)}")
    wanted = [*(PRESETS[preset] if preset else ()), *names]
    if not wanted:
        raise RankkitError("no measures asked for. Fix: pass --preset msmarco|trec-dl or --measure NAME")
    parsed = []
    for name in wanted:
        try:
            measure = ir_measures.parse_measure(name)
            str(measure)  # an unknown parameter, e.g. P(foo=1)@5, fails only here (KeyError)
            # a cutoff below 1 aborts the whole process inside pytrec_eval (a C assertion)
            cutoff = measure.params.get("cutoff")
            if cutoff is not None and (not isinstance(cutoff, int) or cutoff < 1):
                raise ValueError(f"cutoff {cutoff!r}")
            parsed.append(measure)
        except (ValueError, NameError, TypeError, AttributeError, KeyError):
            raise RankkitError(
                f"unknown measure {name!r}. Fix: use an ir-measures name such as nDCG@10, RR@10, AP(rel=2), R@1000, P@5"
            ) from None
    return list(dict.fromkeys(parsed))


def evaluate(run: Run, qrels: Qrels, measures: Sequence[ir_measures.Measure]) -> Evaluation:
    """Evaluate a run against qrels; see the module docstring for missing queries."""
    judged = {qid for qid, docs in qrels.items() if docs}
    run_dict: Mapping[str, dict[str, float]] = {
        qid: {hit.docid: hit.score for hit in hits} for qid, hits in run.items() if qid in judged
    }
    if not run_dict:
        raise RankkitError(
            "the run shares no query id with the qrels. Fix: evaluate the run against the qrels "
            "of the same queries (check the qid column of both files)"
        )
    names = tuple(str(m) for m in measures)
    per_query: dict[str, dict[str, float]] = {name: {} for name in names}
    for value in ir_measures.iter_calc(measures, qrels, run_dict):
        per_query[str(value.measure)][value.query_id] = float(value.value)
    missing = tuple(sorted(judged - set(run_dict)))
    for name in names:
        for qid in judged:
            per_query[name].setdefault(qid, 0.0)
    return Evaluation(names, per_query, missing)
