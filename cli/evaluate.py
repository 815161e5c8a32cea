"""`rankkit eval`: measures of one or more runs, per-query values, paired comparison."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import List, Optional, Sequence

import typer

from rankkit.cli.errors import friendly_errors, stderr
from rankkit.cli.options import stdout_console
from rankkit.errors import RankkitError


class Preset(str, Enum):
    msmarco = "msmarco"
    trec_dl = "trec-dl"


def depth_warning(names: Sequence[str], depths: Sequence[int], measures: Sequence) -> str | None:
    """A warning when runs of different depths are compared by measures cut off beyond the
    shallower depth: there the shallower run has no hits, so differences come from depth alone."""
    shallowest = min(depths)
    beyond = [str(m) for m in measures if (m.params.get("cutoff") or 0) > shallowest]
    if len(set(depths)) < 2 or not beyond:
        return None
    listed = ", ".join(f"{name}: {depth}" for name, depth in zip(names, depths))
    return (f"the runs differ in depth (hits per query at most: {listed}); {', '.join(beyond)} count ranks beyond "
            f"{shallowest}, where the shallower run has no hits, so their differences come partly from depth. "
            f"Fix: cut the runs to one depth (e.g. search with -k {shallowest}) or use cutoffs up to {shallowest}")


@friendly_errors
def evaluate(
    paths: List[str] = typer.Argument(..., help="RUN [RUN ...] QRELS: TREC runs, then the qrels (file or irds:<id>)."),
    preset: Optional[Preset] = typer.Option(None, help="msmarco (RR@10, R@1000) or trec-dl (nDCG@10, AP, R@1000 at rel 2)."),
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
    measures = resolve_measures(preset.value if preset else None if measure else "msmarco", measure or [])
    qrels = read_qrels(qrels_path)
    names = [Path(p).name if Path(p).name not in [Path(q).name for q in run_paths[:i]] else p
             for i, p in enumerate(run_paths)]
    runs = [read_run(p) for p in run_paths]
    evaluations = [evaluate_run(run, qrels, measures) for run in runs]
    warning = depth_warning(names, [max(len(hits) for hits in run.values()) for run in runs], measures)
    if warning is not None:
        stderr.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    console = stdout_console()
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
