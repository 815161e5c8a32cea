"""`rankkit sentiment train|adapt|eval|predict`: review sentiment (CSV or JSONL; a label or a star rating)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer
from rich.console import Console

from rankkit.cli.errors import friendly_errors
from rankkit.cli.groups import Only, with_options
from rankkit.sentiment.config import AdaptConfig, ReviewColumns, SentimentConfig, SentimentModelRun

app = typer.Typer(
    help="Review sentiment: train, evaluate and apply classifiers (code-mixed text welcome).", no_args_is_help=True
)
console = Console(highlight=False, soft_wrap=True)

TextColumn = Annotated[ReviewColumns, Only("text_column", "strict")]  # what unlabelled reviews need


def _read(path: Path, columns: ReviewColumns, labelled: bool = True):
    from rankkit.sentiment.data import read_reviews

    reviews = read_reviews(path, columns.label_spec(), labelled, columns.strict)
    console.print(reviews.summary())
    return reviews


@app.command()
@friendly_errors
@with_options
def train(
    config: SentimentConfig,
    columns: ReviewColumns,
    reviews: Path = typer.Option(..., help="Labelled training reviews (CSV or JSONL)."),
    val: Optional[Path] = typer.Option(None, help="Labelled validation reviews: metrics printed and saved."),
    unlabeled: Optional[Path] = typer.Option(None, help="Unlabelled reviews (text column only), for self-training."),
) -> None:
    """Train a sentiment classifier; with --val, report its metrics on the validation reviews."""
    from rankkit.sentiment.metrics import format_metrics
    from rankkit.sentiment.train import train_sentiment

    labelled = _read(reviews, columns)
    val_reviews = _read(val, columns) if val else None
    extra = _read(unlabeled, columns, labelled=False) if unlabeled else None
    folder = train_sentiment(
        labelled.texts,
        labelled.labels,
        config,
        (val_reviews.texts, val_reviews.labels) if val_reviews else None,
        extra.texts if extra else (),
    )
    console.print(f"model saved in {folder}")
    if val_reviews:
        import json

        console.print(format_metrics(json.loads((Path(config.output) / "val_metrics.json").read_text())))


@app.command()
@friendly_errors
@with_options
def adapt(
    config: AdaptConfig,
    columns: TextColumn,
    reviews: List[Path] = typer.Option(
        ...,
        help="Reviews to adapt on (CSV or JSONL, the text column only); repeat "
        "for several files, e.g. the training and the unlabelled reviews "
        "(never the reviews you evaluate on).",
    ),
) -> None:
    """Adapt an encoder to the reviews' language (masked-LM training on unlabelled text) before `train`."""
    from rankkit.sentiment.adapt import adapt_encoder

    texts = [text for path in reviews for text in _read(path, columns, labelled=False).texts]
    folder = adapt_encoder(texts, config)
    console.print(f"adapted encoder saved in {folder}; fine-tune it with `rankkit sentiment train --model {folder}`")


@app.command("eval")
@friendly_errors
@with_options
def evaluate(
    classifier: SentimentModelRun,
    columns: ReviewColumns,
    reviews: Path = typer.Option(..., help="Labelled reviews (CSV or JSONL)."),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="Folder for metrics.json and roc.png, pr.png, reliability.png."
    ),
) -> None:
    """Accuracy, macro-F1, per-class P/R/F1, AUROC, AUPRC (with the positive prior), confusion, ECE; plots."""
    import json

    from rankkit.data.files import atomic_write
    from rankkit.sentiment.metrics import format_metrics, model_name, plot_curves, sentiment_metrics
    from rankkit.sentiment.model import load_sentiment_model

    labelled = _read(reviews, columns)
    probability = load_sentiment_model(
        classifier.model, classifier.device, classifier.precision, classifier
    ).predict_proba(labelled.texts)
    measured = sentiment_metrics(labelled.labels, probability)
    measured["left_out_rows"] = [{"line": p.line, "reason": p.reason} for p in labelled.problems]
    console.print(format_metrics(measured))
    if output is not None:
        with atomic_write(output / "metrics.json") as out:
            json.dump(measured, out, indent=2)
        written = plot_curves(labelled.labels, probability, output, name=model_name(classifier.model))
        console.print(f"wrote {output / 'metrics.json'}, " + ", ".join(str(p) for p in written))


@app.command()
@friendly_errors
@with_options
def predict(
    classifier: SentimentModelRun,
    columns: TextColumn,
    reviews: Path = typer.Option(..., help="Reviews (CSV or JSONL); only the text column is read."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="JSONL predictions (default: stdout)."),
) -> None:
    """Label each review positive or negative, with P(positive), as JSONL."""
    from rankkit.sentiment.data import read_reviews, write_predictions
    from rankkit.sentiment.model import load_sentiment_model

    found = read_reviews(reviews, columns.label_spec(), labelled=False, strict=columns.strict)
    if output is not None or found.problems:  # stdout stays pure JSONL when it carries the predictions
        Console(stderr=True, highlight=False, soft_wrap=True).print(found.summary())
    write_predictions(
        found,
        load_sentiment_model(classifier.model, classifier.device, classifier.precision, classifier).predict_proba(
            found.texts
        ),
        output,
    )
