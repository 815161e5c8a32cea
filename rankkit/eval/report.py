"""Evaluation reports: tables for the terminal and JSON for files."""

from __future__ import annotations

import json
import math
from typing import Sequence

from rich.table import Table

from rankkit.eval.compare import Comparison
from rankkit.eval.measures import Evaluation


def summary_table(names: Sequence[str], evaluations: Sequence[Evaluation]) -> Table:
    table = Table(title="Evaluation")
    table.add_column("run")
    measures = evaluations[0].measures
    for measure in measures:
        table.add_column(measure, justify="right")
    for name, evaluation in zip(names, evaluations):
        table.add_row(name, *(f"{evaluation.aggregate[m]:.4f}" for m in measures))
    return table


def per_query_table(name: str, evaluation: Evaluation) -> Table:
    table = Table(title=f"Per query: {name}")
    table.add_column("qid")
    for measure in evaluation.measures:
        table.add_column(measure, justify="right")
    for qid in sorted(evaluation.per_query[evaluation.measures[0]]):
        table.add_row(qid, *(f"{evaluation.per_query[m][qid]:.4f}" for m in evaluation.measures))
    return table


def comparison_table(comparisons: Sequence[Comparison]) -> Table:
    table = Table(title="Paired comparison (two-sided paired t-test)")
    for column in ("measure", "baseline", "run", "mean diff", "p-value", "queries"):
        table.add_column(column, justify="right" if column in ("mean diff", "p-value", "queries") else "left")
    for c in comparisons:
        p = "n/a" if math.isnan(c.p_value) else f"{c.p_value:.4g}"
        table.add_row(c.measure, c.baseline, c.other, f"{c.mean_difference:+.4f}", p, str(c.queries))
    return table


def to_json(names: Sequence[str], evaluations: Sequence[Evaluation], comparisons: Sequence[Comparison]) -> str:
    return json.dumps(
        {
            "runs": {
                name: {
                    "aggregate": ev.aggregate,
                    "per_query": ev.per_query,
                    "missing_queries": list(ev.missing_queries),
                }
                for name, ev in zip(names, evaluations)
            },
            "comparisons": [
                {**c.__dict__, "p_value": None if math.isnan(c.p_value) else c.p_value} for c in comparisons
            ],
        },
        indent=2,
    )
