"""`rankkit search`: one query to a table, or a queries file to a TREC run."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from rankkit.cli.errors import friendly_errors
from rankkit.cli.groups import with_options
from rankkit.cli.options import AT_LEAST_1, NON_NEGATIVE, stdout_console
from rankkit.errors import RankkitError
from rankkit.retrieve.fusion import FusionConfig
from rankkit.retrieve.options import BM25Params, DenseQuery


@friendly_errors
@with_options
def search(
    index: List[Path] = typer.Option(..., "--index", "-i", help="Index folder; give two or more for hybrid."),
    query: Optional[str] = typer.Option(None, "--query", "-q", help="One query, answered as a table."),
    queries: Optional[str] = typer.Option(
        None, help="Queries file (TSV, TREC topics or BEIR queries.jsonl) or irds:<id>."
    ),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="TREC run to write."),
    k: int = typer.Option(10, "--k", "-k", callback=AT_LEAST_1, help="Hits per query."),
    tag: str = typer.Option("rankkit", help="Run tag (last column of the TREC run)."),
    weight: Optional[List[float]] = typer.Option(
        None, callback=NON_NEGATIVE, help="Hybrid: one weight per --index (instead of --fusion and --alpha)."
    ),
    dense: DenseQuery = DenseQuery(),
    bm25: BM25Params = BM25Params(),
    fusion: FusionConfig = FusionConfig(),
) -> None:
    """Search one or more indexes (BM25, dense, or hybrid when several are given)."""
    from rankkit.data.queries import read_queries
    from rankkit.data.runs import write_run
    from rankkit.retrieve import open_retriever

    if (query is None) == (queries is None):
        raise RankkitError(
            "give exactly one of --query TEXT or --queries FILE. "
            "Fix: pass --query 'some text' for one query, or --queries FILE -o RUN_FILE for many"
        )
    if queries is not None and output is None:
        raise RankkitError("--queries needs --output RUN_FILE. Fix: add -o run.trec")
    retriever = open_retriever(index, dense, bm25, fusion=fusion, weights=weight)
    if query is not None:
        from rich.markup import escape
        from rich.text import Text

        from rankkit.cli.errors import stderr
        from rankkit.retrieve.texts import hit_texts, shorten

        hits = retriever.search(query, k)
        found = hit_texts(index, [hit.docid for hit in hits])  # each hit's text, from the index's corpus
        table = Table(title=f"{retriever.name}: {query}")
        for column in ("rank", "docid", "score", "text") if found.texts else ("rank", "docid", "score"):
            table.add_column(column, justify="right" if column in ("rank", "score") else "left")
        for rank, hit in enumerate(hits, start=1):
            table.add_row(
                str(rank),
                Text(hit.docid),
                f"{hit.score:.4f}",
                *([Text(shorten(found.texts.get(hit.docid, "")))] if found.texts else []),
            )
        stdout_console().print(table)
        if found.warning:
            stderr.print(f"[yellow]warning:[/] {escape(found.warning)}", highlight=False, soft_wrap=True)
        if output is not None:  # the one query's hits as a TREC run, query id 1
            write_run({"1": hits}, output, tag=tag)
            print(f"wrote {len(hits)} hits for the query (query id 1) to {output}")
        return
    from rankkit.retrieve.progress import search_with_progress

    run = search_with_progress(retriever, read_queries(queries), k)
    write_run(run, output, tag=tag)
    print(f"wrote {sum(len(h) for h in run.values())} hits for {len(run)} queries to {output}")
