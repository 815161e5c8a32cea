"""`rankkit search`: one query to a table, or a queries file to a TREC run."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from rankkit.cli.errors import friendly_errors
from rankkit.cli.options import (ALPHA_HELP, AT_LEAST_1, EF_SEARCH_HELP, FUSION_CONFIG_HELP, FUSION_DEPTH_HELP,
                                 FUSION_HELP, GPU_FP16_HELP, GPU_SHARD_HELP, NON_NEGATIVE, NPROBE_HELP,
                                 PRECISION_HELP, QUERY_PROMPT_HELP, Fusion, Precision, fusion_config, number_check,
                                 stdout_console)
from rankkit.errors import RankkitError


@friendly_errors
def search(
    index: List[Path] = typer.Option(..., "--index", "-i", help="Index folder; give two or more for hybrid."),
    query: Optional[str] = typer.Option(None, "--query", "-q", help="One query, answered as a table."),
    queries: Optional[str] = typer.Option(None, help="Queries file (TSV, TREC topics or BEIR queries.jsonl) or "
                                                     "irds:<id>."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="TREC run to write (with --queries)."),
    k: int = typer.Option(10, "--k", "-k", callback=AT_LEAST_1, help="Hits per query."),
    tag: str = typer.Option("rankkit", help="Run tag (last column of the TREC run)."),
    weight: Optional[List[float]] = typer.Option(None, callback=NON_NEGATIVE,
                                                 help="Hybrid: one weight per --index (instead of --alpha)."),
    fusion: Optional[Fusion] = typer.Option(None, help=FUSION_HELP),
    alpha: Optional[float] = typer.Option(None, callback=number_check(0, 1), help=ALPHA_HELP),
    fusion_depth: Optional[int] = typer.Option(None, callback=AT_LEAST_1, help=FUSION_DEPTH_HELP),
    fusion_config_file: Optional[Path] = typer.Option(None, "--fusion-config", help=FUSION_CONFIG_HELP),
    model: Optional[str] = typer.Option(None, help="Dense: query model; default the one in the index manifest."),
    k1: Optional[float] = typer.Option(None, callback=NON_NEGATIVE, help="BM25 k1 (default 0.9)."),
    b: Optional[float] = typer.Option(None, callback=number_check(0, 1), help="BM25 b (default 0.4)."),
    device: Optional[str] = typer.Option(None, help="auto (default), cpu or cuda."),
    precision: Precision = typer.Option(Precision.fp32, help=PRECISION_HELP),
    nprobe: Optional[int] = typer.Option(None, min=1, help=NPROBE_HELP),
    ef_search: Optional[int] = typer.Option(None, min=1, help=EF_SEARCH_HELP),
    query_prompt: Optional[str] = typer.Option(None, help=QUERY_PROMPT_HELP),
    gpu_shard: bool = typer.Option(False, help=GPU_SHARD_HELP),
    gpu_fp16: bool = typer.Option(False, help=GPU_FP16_HELP),
) -> None:
    """Search one or more indexes (BM25, dense, or hybrid when several are given)."""
    from rankkit.data.queries import read_queries
    from rankkit.data.runs import write_run
    from rankkit.index.dense import search_params_of
    from rankkit.index.faiss_device import GpuOptions
    from rankkit.retrieve import open_retriever

    if (query is None) == (queries is None):
        raise RankkitError("give exactly one of --query TEXT or --queries FILE. "
                           "Fix: pass --query 'some text' for one query, or --queries FILE -o RUN_FILE for many")
    if queries is not None and output is None:
        raise RankkitError("--queries needs --output RUN_FILE. Fix: add -o run.trec")
    retriever = open_retriever(index, model=model, weights=weight, k1=k1, b=b, device=device,
                               precision=precision.value, search_params=search_params_of(nprobe, ef_search),
                               query_prompt=query_prompt, gpu=GpuOptions(gpu_shard, gpu_fp16),
                               fusion=fusion_config(fusion, alpha, fusion_depth, fusion_config_file))
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
            table.add_row(str(rank), Text(hit.docid), f"{hit.score:.4f}",
                          *([Text(shorten(found.texts.get(hit.docid, "")))] if found.texts else []))
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
