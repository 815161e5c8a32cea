"""`rankkit train biencoder|reranker`: fine-tune on a MinedSet."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from rankkit.cli.errors import friendly_errors
from rankkit.errors import RankkitError


class Kind(str, Enum):
    biencoder = "biencoder"
    reranker = "reranker"
    cet = "cet"


@friendly_errors
def train(
    kind: Kind = typer.Argument(..., help="biencoder (InfoNCE), reranker (cross-encoder) or cet (relevance + "
                                          "selection models, coupled)."),
    mined: Path = typer.Option(..., help="MinedSet written by `rankkit mine`."),
    corpus: str = typer.Option(..., help="Corpus the MinedSet was mined from (passage texts)."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder: model/, train_log.jsonl, config.json."),
    model: str = typer.Option("default", help="Starting checkpoint (any encoder; rerankers get a new head)."),
    epochs: int = typer.Option(1),
    max_steps: Optional[int] = typer.Option(None, help="Stop after this many optimizer steps."),
    batch_size: int = typer.Option(8, help="Queries per micro-batch."),
    grad_accum: int = typer.Option(1, help="Micro-batches per optimizer step."),
    negatives: int = typer.Option(4, help="Mined negatives per query."),
    lr: float = typer.Option(2e-5, help="Peak learning rate."),
    warmup_ratio: float = typer.Option(0.1, help="Share of steps warming up, then linear decay."),
    max_grad_norm: float = typer.Option(1.0, help="Gradient clipping."),
    temperature: float = typer.Option(0.05, help="Bi-encoder (and CET bi-encoder relevance): score temperature."),
    loss: Optional[str] = typer.Option(None, help="Bi-encoder: infonce (default) or pairwise. Reranker: softmax "
                                                  "(default; listwise/pairwise CE) or bce (pointwise)."),
    relevance: str = typer.Option("cross-encoder", help="CET: relevance model, cross-encoder or bi-encoder."),
    selection: str = typer.Option("provenance", help="CET: selection model, provenance (light) or cross-encoder."),
    debias_ratio: float = typer.Option(2.0, help="CET: T in the pair weight 1 / (1 - sigmoid(s_neg / T))."),
    selection_model: Optional[str] = typer.Option(None, help="CET: cross-encoder selection model's start."),
    selection_lr: Optional[float] = typer.Option(None, help="CET: selection model learning rate."),
    seed: int = typer.Option(0),
    checkpoint_every: int = typer.Option(0, help="Steps between checkpoints (resume by rerunning)."),
    eval_every: int = typer.Option(0, help="Steps between dev evaluations (needs the --dev-* options)."),
    dev_queries: Optional[str] = typer.Option(None, help="Dev queries file."),
    dev_qrels: Optional[str] = typer.Option(None, help="Dev qrels."),
    dev_run: Optional[str] = typer.Option(None, help="Dev candidates to rerank (TREC run, e.g. BM25 top-100)."),
    plot: bool = typer.Option(False, help="Write training_curves.png."),
    device: Optional[str] = typer.Option(None, help="auto (default), cpu or cuda."),
    overwrite: bool = typer.Option(False, help="Start afresh in --output."),
) -> None:
    """Fine-tune a bi-encoder or a cross-encoder reranker on mined negatives."""
    from rankkit.data.corpus import read_doc_texts
    from rankkit.data.qrels import read_qrels
    from rankkit.data.queries import read_queries
    from rankkit.data.runs import read_run
    from rankkit.mining.minedset import MinedSet
    from rankkit.train import DevSet, TrainConfig, train_biencoder, train_reranker
    from rankkit.train.cet import CETConfig, train_cet

    config = TrainConfig(output=str(output), model=model, epochs=epochs, max_steps=max_steps, batch_size=batch_size,
                         grad_accum=grad_accum, negatives=negatives, lr=lr, warmup_ratio=warmup_ratio,
                         max_grad_norm=max_grad_norm, seed=seed, checkpoint_every=checkpoint_every,
                         eval_every=eval_every, device=device, plot=plot, overwrite=overwrite)
    mined_set = MinedSet.read(mined)
    dev_given = [dev_queries, dev_qrels, dev_run]
    if any(dev_given) and not all(dev_given):
        raise RankkitError("dev evaluation needs --dev-queries, --dev-qrels and --dev-run together")
    dev_candidates = read_run(dev_run) if dev_run else {}
    needed = ({d for q in mined_set.queries for d in (*q.positives, *(n.docid for n in q.negatives))}
              | {h.docid for hits in dev_candidates.values() for h in hits})
    doc_texts = read_doc_texts(corpus, docids=needed)
    dev = DevSet(read_queries(dev_queries), read_qrels(dev_qrels), dev_candidates, doc_texts) if dev_run else None
    if kind is Kind.biencoder:
        folder = train_biencoder(mined_set, doc_texts, config, temperature=temperature, dev=dev,
                                 loss=loss or "infonce")  # type: ignore[arg-type]
    elif kind is Kind.reranker:
        folder = train_reranker(mined_set, doc_texts, config, loss=loss or "softmax", dev=dev)  # type: ignore[arg-type]
    else:
        cet = CETConfig(relevance=relevance, selection=selection, temperature=debias_ratio,  # type: ignore[arg-type]
                        selection_model=selection_model, selection_lr=selection_lr, bi_temperature=temperature)
        folder = train_cet(mined_set, doc_texts, config, cet, dev=dev)
    print(f"saved the trained {kind.value} to {folder}")
