"""`rankkit quickstart`: index, search and evaluate end to end on the embedded defaults."""

from __future__ import annotations

from pathlib import Path

from rankkit.cli.errors import friendly_errors
from rankkit.cli.groups import with_options
from rankkit.cli.options import stdout_console
from rankkit.quickstart import QuickstartConfig


@friendly_errors
@with_options
def quickstart(config: QuickstartConfig) -> None:
    """Build BM25 and dense indexes, search with BM25, dense and hybrid, and evaluate; on a folder of
    your own .txt / .md files (no queries), build the indexes and print how to search them."""
    from rankkit.eval.report import summary_table
    from rankkit.quickstart import run_quickstart

    result = run_quickstart(config)
    if not result.evaluations:  # a folder of text files: no queries, so say how to search instead
        print(f"indexes are in {Path(config.output) / 'indexes'}; {result.how_to_search()}")
        return
    stdout_console().print(summary_table(list(result.evaluations), list(result.evaluations.values())))
    print(f"indexes, runs and report.json are in {config.output}")
