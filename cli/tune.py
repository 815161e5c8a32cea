"""`rankkit tune fusion`: choose the hybrid fusion method and alpha on dev queries."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer
from rich.console import Console
from rich.table import Table

from rankkit.cli.errors import friendly_errors
from rankkit.cli.groups import Only, with_options
from rankkit.errors import RankkitError
from rankkit.retrieve.fusion import FusionConfig, FusionMethod
from rankkit.retrieve.options import DenseQuery

app = typer.Typer(help="Tune settings on dev queries.", no_args_is_help=True)


def _dev_runs(
    index: list[Path],
    dense_run: Optional[Path],
    bm25_run: Optional[Path],
    queries: dict[str, str],
    depth: int,
    dense: DenseQuery,
) -> tuple[dict, dict]:
    """(dense run, BM25 run) of the dev queries: read from --dense-run/--bm25-run, or searched
    in one dense and one BM25 --index."""
    from rankkit.data.runs import read_run
    from rankkit.retrieve import open_retriever
    from rankkit.retrieve.hybrid import retriever_kind

    if index and (dense_run or bm25_run):
        raise RankkitError(
            "--index and --dense-run/--bm25-run given together, not both. Fix: tune on two indexes, or on two runs"
        )
    if not index:
        if not (dense_run and bm25_run):
            raise RankkitError(
                "nothing to tune on. Fix: pass one dense and one BM25 --index, or --dense-run RUN "
                "and --bm25-run RUN of the dev queries"
            )
        return read_run(dense_run), read_run(bm25_run)
    retrievers = [open_retriever([folder], dense) for folder in index]
    kinds = sorted(retriever_kind(r) for r in retrievers)
    if kinds != ["bm25", "dense"]:
        raise RankkitError(
            f"tuning fuses one dense and one BM25 index, got {', '.join(kinds)}. "
            "Fix: pass --index DENSE_INDEX --index BM25_INDEX"
        )
    runs = {retriever_kind(r): r.batch_search(queries, depth) for r in retrievers}
    return runs["dense"], runs["bm25"]


@app.command()
@friendly_errors
@with_options
def fusion(
    dev_queries: str = typer.Option(..., help="Dev queries (TSV, TREC topics or BEIR queries.jsonl)."),
    dev_qrels: str = typer.Option(..., help="Dev qrels (TREC or BEIR qrels/dev.tsv)."),
    index: Optional[List[Path]] = typer.Option(None, "--index", "-i", help="One dense and one BM25 index folder."),
    dense_run: Optional[Path] = typer.Option(None, help="Instead of --index: a dense run of the dev queries."),
    bm25_run: Optional[Path] = typer.Option(None, help="Instead of --index: a BM25 run of the dev queries."),
    output: Path = typer.Option(
        Path("fusion.json"),
        "--output",
        "-o",
        help="fusion.json to write; pass it to search/serve with --fusion-config.",
    ),
    measure: str = typer.Option("nDCG@10", help="The ir-measures measure to maximise."),
    method: Optional[List[FusionMethod]] = typer.Option(None, "--method", help="Methods to try (default: all three)."),
    fusion: Annotated[FusionConfig, Only("depth")] = FusionConfig(),
    dense: DenseQuery = DenseQuery(),
) -> None:
    """Try rrf, and convex and zscore at alpha 0, 0.05, ..., 1 on dev queries; write the best."""
    from rankkit.data.qrels import read_qrels
    from rankkit.data.queries import read_queries
    from rankkit.retrieve.fusion import FUSION_METHODS
    from rankkit.retrieve.tune import tune_fusion

    qrels = read_qrels(dev_qrels)
    queries = {qid: text for qid, text in read_queries(dev_queries).items() if qid in qrels}
    if not queries:
        raise RankkitError(
            f"no query of {dev_queries} is judged in {dev_qrels}. Fix: give the dev split's queries and qrels"
        )
    dense_hits, bm25_hits = _dev_runs(index or [], dense_run, bm25_run, queries, fusion.depth, dense)
    methods = list(method) if method else list(FUSION_METHODS)
    result = tune_fusion(dense_hits, bm25_hits, qrels, measure, methods, depth=fusion.depth)
    result.best.write(
        output,
        tuned_on={
            "queries": dev_queries,
            "qrels": dev_qrels,
            "judged_queries": result.queries,
            "measure": result.measure,
            "score": result.score,
        },
    )
    table = Table(title=f"{result.measure} on {result.queries} dev queries")
    for column in ("method", "alpha", result.measure):
        table.add_column(column, justify="right")
    for row in result.grid:
        table.add_row(row["method"], "" if row["alpha"] is None else f"{row['alpha']:.2f}", f"{row['score']:.4f}")
    Console().print(table)
    alpha = f" alpha {result.best.alpha:.2f}" if result.best.method != "rrf" else ""
    print(f"best: {result.best.method}{alpha} ({result.measure} {result.score:.4f}); wrote {output}")
