"""`rankkit eval`: measures of one or more runs, per-query values, paired comparison."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, Sequence

import typer

from rankkit.cli.errors import friendly_errors, stderr
from rankkit.cli.options import stdout_console
from rankkit.errors import RankkitError

if TYPE_CHECKING:
    from rankkit.data.runs import Run


DEFAULT_PRESET = "msmarco"


class Preset(str, Enum):
    msmarco = "msmarco"
    trec_dl = "trec-dl"


def depth_warning(names: Sequence[str], runs: Sequence[Run], measures: Sequence) -> str | None:
    """A warning when runs of different depths are compared by measures cut off beyond the
    shallower depth: there the shallower run has no hits, so differences come from depth alone.

    A run is shallower either because it was searched with a smaller -k (then most of its queries
    have exactly that many hits) or because its retriever matched fewer documents (BM25 only
    returns passages sharing a term with the query; then the counts vary, and a deeper -k would
    add nothing): the advice follows which."""
    depths = [max((len(hits) for hits in run.values()), default=0) for run in runs]
    shallowest, deepest = min(depths), max(depths)
    beyond = [m for m in measures if (m.params.get("cutoff") or 0) > shallowest]
    if len(set(depths)) < 2 or not beyond:
        return None
    listed = ", ".join(f"{name}: {depth}" for name, depth in zip(names, depths))
    shallow = [i for i, depth in enumerate(depths) if depth == shallowest]
    which, has = " and ".join(names[i] for i in shallow), "has" if len(shallow) == 1 else "have"
    head = (
        f"the runs differ in depth (hits per query at most: {listed}); {', '.join(map(str, beyond))} count ranks "
        f"beyond {shallowest}, where {which} {has} no hits, so their differences come partly from depth"
    )
    full = [sum(len(hits) == shallowest for hits in runs[i].values()) for i in shallow]
    if all(2 * count <= len(runs[i]) for count, i in zip(full, shallow)):  # most queries stop short of the depth
        return (
            f"{head}. {which} {has} fewer hits than the cutoff because the retriever matched fewer documents "
            f"(at most {shallowest} for any query, fewer for most), not because of -k: a deeper search adds none. "
            f"Fix: compare with cutoffs up to {shallowest}"
        )
    largest = max(m.params["cutoff"] for m in beyond)
    return (
        f"{head}. Fix: if {which} was searched with -k {shallowest}, search it again with -k {max(largest, deepest)}; "
        f"else compare with cutoffs up to {shallowest}"
    )


@friendly_errors
def evaluate(
    paths: List[str] = typer.Argument(..., help="RUN [RUN ...] QRELS: TREC runs, then the qrels (file or irds:<id>)."),
    preset: Optional[Preset] = typer.Option(
        None,
        help="Measures: msmarco (RR@10, R@1000) or trec-dl (nDCG@10, AP(rel=2), R(rel=2)@1000). Default: msmarco, "
        "unless -m is given.",
    ),
    measure: Optional[List[str]] = typer.Option(
        None,
        "--measure",
        "-m",
        help="Any ir-measures name, e.g. P@5; repeatable. Alone, -m replaces the default "
        "preset's measures (msmarco: RR@10, R@1000); with --preset, adds to them.",
    ),
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
    measures = resolve_measures(preset.value if preset else None if measure else DEFAULT_PRESET, measure or [])
    if preset is None and not measure:
        stderr.print(
            f"measures: {', '.join(map(str, measures))} (the {DEFAULT_PRESET} preset; choose others with "
            "--preset or -m)",
            highlight=False,
            soft_wrap=True,
        )
    qrels = read_qrels(qrels_path)
    names = [
        Path(p).name if Path(p).name not in [Path(q).name for q in run_paths[:i]] else p
        for i, p in enumerate(run_paths)
    ]
    runs = [read_run(p) for p in run_paths]
    evaluations = [evaluate_run(run, qrels, measures) for run in runs]
    warning = depth_warning(names, runs, measures)
    if warning is not None:
        stderr.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    console = stdout_console()
    console.print(summary_table(names, evaluations))
    for name, ev in zip(names, evaluations):
        if ev.missing_queries:
            console.print(f"[yellow]{name}: {len(ev.missing_queries)} judged queries have no hits and score 0[/]")
        if per_query:
            console.print(per_query_table(name, ev))
    comparisons = [
        paired_compare(m, names[0], evaluations[0], name, ev)
        for name, ev in zip(names[1:], evaluations[1:])
        for m in evaluations[0].measures
    ]
    if comparisons:
        console.print(comparison_table(comparisons))
    if json_out is not None:
        with atomic_write(json_out) as handle:
            handle.write(to_json(names, evaluations, comparisons) + "\n")
