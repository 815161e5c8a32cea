"""`rankkit quickstart`: index, search and evaluate end to end on the embedded defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rankkit.cli.errors import friendly_errors
from rankkit.cli.options import (ALPHA_HELP, FUSION_HELP, PRECISION_HELP, Fusion, Precision, fusion_config,
                                 stdout_console)


@friendly_errors
def quickstart(
    data: Optional[Path] = typer.Option(None, help="Collection folder (collection.tsv, queries.tsv, qrels.txt) or "
                                                   "BEIR folder (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv); "
                                                   "default: the bundled sample."),
    split: Optional[str] = typer.Option(None, help="BEIR folder: the qrels split to evaluate (default test, "
                                                   "else the only one); its judged queries are searched."),
    out: Path = typer.Option(Path("quickstart-output"), help="Where indexes, runs and the report go."),
    model: str = typer.Option("default", help="Dense model; default the packaged all-MiniLM-L6-v2."),
    device: Optional[str] = typer.Option(None, help="auto (default), cpu or cuda."),
    precision: Precision = typer.Option(Precision.fp32, help=PRECISION_HELP),
    fusion: Optional[Fusion] = typer.Option(None, help=FUSION_HELP),
    alpha: Optional[float] = typer.Option(None, help=ALPHA_HELP),
) -> None:
    """Build BM25 and dense indexes, search with BM25, dense and hybrid, and evaluate; on a folder of
    your own .txt / .md files (no queries), build the indexes and print how to search them."""
    from rankkit.eval.report import summary_table
    from rankkit.quickstart import QuickstartConfig, run_quickstart

    config = QuickstartConfig(data=str(data) if data else None, split=split, out=str(out), model=model, device=device,
                              precision=precision.value, fusion=fusion_config(fusion, alpha, None, None))
    result = run_quickstart(config)
    if not result.evaluations:  # a folder of text files: no queries, so say how to search instead
        print(f"indexes are in {out / 'indexes'}; {result.how_to_search()}")
        return
    stdout_console().print(summary_table(list(result.evaluations), list(result.evaluations.values())))
    print(f"indexes, runs and report.json are in {out}")
