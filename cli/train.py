"""`rankkit train biencoder|reranker|cet`: fine-tune on a MinedSet.

Each trainer is its own sub-command; the training data (TrainData) and the training settings
(TrainConfig: schedule, runtime, output) are option groups every trainer shares."""

from __future__ import annotations

from typing import Literal

import typer

from rankkit.cli.errors import friendly_errors
from rankkit.cli.groups import with_options
from rankkit.cli.options import POSITIVE
from rankkit.train.config import CETConfig, RerankerConfig, TrainConfig
from rankkit.train.inputs import TrainData

app = typer.Typer(help="Fine-tune a ranker on a MinedSet: one sub-command per trainer.", no_args_is_help=True)


@app.command()
@friendly_errors
@with_options
def biencoder(
    data: TrainData,
    config: TrainConfig,
    loss: Literal["infonce", "pairwise"] = typer.Option(
        "infonce", help="infonce (in-batch and mined negatives) or pairwise (CET's loss without its weights)."
    ),
    temperature: float = typer.Option(0.05, callback=POSITIVE, help="Score temperature (scores = cosine / T)."),
) -> None:
    """Fine-tune a bi-encoder (sentence-transformers model) on mined negatives."""
    from rankkit.train import train_biencoder

    mined_set, doc_texts, dev = data.load()
    folder = train_biencoder(mined_set, doc_texts, config, temperature=temperature, dev=dev, loss=loss)
    print(f"saved the trained biencoder to {folder}")


@app.command()
@friendly_errors
@with_options
def reranker(data: TrainData, config: TrainConfig, reranker: RerankerConfig) -> None:
    """Fine-tune a cross-encoder reranker on mined negatives (a new scoring head when the model has none)."""
    from rankkit.train import train_reranker

    mined_set, doc_texts, dev = data.load()
    folder = train_reranker(mined_set, doc_texts, config, reranker, dev=dev)
    print(f"saved the trained reranker to {folder}")


@app.command()
@friendly_errors
@with_options
def cet(data: TrainData, config: TrainConfig, cet: CETConfig) -> None:
    """Train a relevance and a selection model together (CET), correcting pooling bias."""
    from rankkit.train.cet import train_cet

    mined_set, doc_texts, dev = data.load()
    folder = train_cet(mined_set, doc_texts, config, cet, dev=dev)
    print(f"saved the trained cet to {folder}")
