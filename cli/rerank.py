"""`rankkit rerank`: rescore a TREC run's top documents with a cross-encoder."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from rankkit.cli.errors import friendly_errors
from rankkit.cli.groups import with_options
from rankkit.cli.options import AT_LEAST_1
from rankkit.errors import RankkitError
from rankkit.options import Inference


@friendly_errors
@with_options
def rerank(
    run: str = typer.Option(..., help="TREC run to rerank."),
    queries: str = typer.Option(..., help="Queries file of the run."),
    corpus: str = typer.Option(..., help="Corpus the run was retrieved from."),
    model: str = typer.Option(..., help="Cross-encoder folder (e.g. one trained by `rankkit train reranker`)."),
    output: Path = typer.Option(..., "--output", "-o", help="Reranked TREC run to write."),
    depth: int = typer.Option(100, callback=AT_LEAST_1, help="Rerank this many top hits per query."),
    tag: str = typer.Option("rerank", help="Run tag."),
    runtime: Inference = Inference(),
    allow_new_head: bool = typer.Option(
        False, help="Rerank even with a model that has no trained scoring head (a new random one: arbitrary scores)."
    ),
) -> None:
    """Rerank a run with a cross-encoder, writing a TREC run."""
    from rankkit.data.corpus import read_doc_texts
    from rankkit.data.queries import read_queries
    from rankkit.data.runs import read_run, write_run
    from rankkit.encode.crossencoder import CrossEncoder
    from rankkit.encode.dev_record import describe_reranker
    from rankkit.retrieve.rerank import rerank_run

    cross_encoder = CrossEncoder(model, device=runtime.device, precision=runtime.precision, inference=runtime)
    if cross_encoder.new_head and not allow_new_head:
        raise RankkitError(
            f"{model}: has no trained scoring head (it is not a cross-encoder), so a new random "
            "head would score the passages and the ranking would be arbitrary. Fix: train one with "
            "`rankkit train reranker --model MODEL`, pass a cross-encoder folder, or --allow-new-head"
        )
    print(f"reranker {model}: {describe_reranker(cross_encoder.model_dir)}", file=sys.stderr)
    candidates = read_run(run)
    needed = {h.docid for hits in candidates.values() for h in hits[:depth]}
    reranked = rerank_run(
        candidates,
        read_queries(queries),
        read_doc_texts(corpus, docids=needed),
        cross_encoder,
        depth,
        show_progress=True,
    )
    write_run(reranked, output, tag=tag)
    print(f"wrote the reranked run to {output}")
