"""`rankkit cet suspects`: the mined negatives CET thinks are false negatives."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from rankkit.cli.errors import friendly_errors
from rankkit.cli.groups import Only, with_options
from rankkit.cli.options import AT_LEAST_1
from rankkit.options import Runtime

app = typer.Typer(
    help="CET: false-negative estimates from trained relevance and selection models.", no_args_is_help=True
)


@app.command()
@friendly_errors
@with_options
def suspects(
    mined: Path = typer.Option(..., help="MinedSet the CET models were trained on."),
    corpus: str = typer.Option(..., help="Corpus of the MinedSet (passage texts)."),
    model: Path = typer.Option(..., help="CET model folder (the model/ that `rankkit train cet` wrote)."),
    output: Path = typer.Option(..., "--output", "-o", help="TSV of the top suspects, for annotation."),
    top: int = typer.Option(100, callback=AT_LEAST_1, help="How many suspects to write."),
    full_qrels: Optional[str] = typer.Option(None, help="Complete judgments: report the suspects' precision."),
    min_grade: int = typer.Option(1, help="With --full-qrels: grades at or above this count as relevant."),
    runtime: Annotated[Runtime, Only("device")] = Runtime(),
) -> None:
    """Score every mined negative's false-negative probability and write the top suspects."""
    from rankkit.data.corpus import read_doc_texts
    from rankkit.data.qrels import read_qrels
    from rankkit.mining.minedset import MinedSet
    from rankkit.train.suspects import load_cet_models, score_suspects, suspect_precision, write_suspects

    mined_set = MinedSet.read(mined)
    doc_texts = read_doc_texts(corpus, docids={c.docid for q in mined_set.queries for c in q.negatives})
    relevance, selection, temperature = load_cet_models(model, mined_set, runtime.device)
    ranked = score_suspects(mined_set, doc_texts, relevance, selection, temperature)[:top]
    judgments = read_qrels(full_qrels) if full_qrels else None
    write_suspects(ranked, output, {q.qid: q.query for q in mined_set.queries}, doc_texts, judgments)
    print(f"wrote the top {len(ranked)} suspects to {output}")
    if judgments is not None:
        print(
            f"precision of the top {len(ranked)} suspects against the full qrels: "
            f"{suspect_precision(ranked, judgments, min_grade):.4f}"
        )
