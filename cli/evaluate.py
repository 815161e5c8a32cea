"""`rankkit eval`: measures of one or more runs, per-query values, paired comparison."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from rankkit.cli.errors import friendly_errors
from rankkit.errors import RankkitError


@friendly_errors
def evaluate(
    paths: List[str] = typer.Argument(..., help="RUN [RUN ...] QRELS: TREC runs, then the qrels (file or irds:<id>)."),
    preset: Optional[str] = typer.Option(None, help="msmarco (RR@10, R@1000) or trec-dl (nDCG@10, AP, R@1000 at rel 2)."),
    measure: Optional[List[str]] = typer.Option(None, "--measure", "-m", help="Any ir-measures name, e.g. P@5."),
    per_query: bool = typer.Option(False, help="Also print per-query values."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write all figures as JSON here."),
) -> None:
    """Evaluate runs against qrels; with several runs, compare each to the first (paired t-test)."""
    from rankkit.data.files import atomic_write
    from rankkit.data.qrels import read_qrels
    from rankkit.data.runs import read_run
    from rankkit.eval import evaluate as evaluate_run
    from rankkit.eval import paired_compare, resolve_measures
    from rankkit.eval.report import comparison_table, per_query_table, summary_table, to_json

    if len(paths) < 2:
        raise RankkitError("give at least one run and the qrels. Fix: rankkit eval RUN [RUN ...] QRELS")
    *run_paths, qrels_path = paths
    measures = resolve_measures(preset if preset or measure else "msmarco", measure or [])
    qrels = read_qrels(qrels_path)
    names = [Path(p).name if Path(p).name not in [Path(q).name for q in run_paths[:i]] else p
             for i, p in enumerate(run_paths)]
    evaluations = [evaluate_run(read_run(p), qrels, measures) for p in run_paths]
    console = Console()
    console.print(summary_table(names, evaluations))
    for name, ev in zip(names, evaluations):
        if ev.missing_queries:
            console.print(f"[yellow]{name}: {len(ev.missing_queries)} judged queries have no hits and score 0[/]")
        if per_query:
            console.print(per_query_table(name, ev))
    comparisons = [paired_compare(m, names[0], evaluations[0], name, ev)
                   for name, ev in zip(names[1:], evaluations[1:]) for m in evaluations[0].measures]
    if comparisons:
        console.print(comparison_table(comparisons))
    if json_out is not None:
        with atomic_write(json_out) as handle:
            handle.write(to_json(names, evaluations, comparisons) + "\n")
