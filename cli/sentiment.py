"""`rankkit sentiment train|eval|predict`: review sentiment (CSV or JSONL; a label or a star rating)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from rankkit.cli.errors import friendly_errors
from rankkit.cli.options import (AT_LEAST_1, NON_NEGATIVE, POSITIVE, PRECISION_HELP, TRAIN_PRECISION_HELP, Precision,
                                 TrainPrecision, number_check)

app = typer.Typer(help="Review sentiment: train, evaluate and apply classifiers (code-mixed text welcome).",
                  no_args_is_help=True)
console = Console(highlight=False, soft_wrap=True)


class Method(str, Enum):
    tfidf = "tfidf"
    transformer = "transformer"
    contrastive = "contrastive"
    self_training = "self-training"


class Pooling(str, Enum):
    cls = "cls"
    mean = "mean"


TEXT_COLUMN = typer.Option("text", help="Column (CSV header or JSON key) holding the review text.")
LABEL_COLUMN = typer.Option("label", help="Column holding the label: 1/0, positive/negative or pos/neg.")
RATING_COLUMN = typer.Option(None, help="Read a star rating from this column instead of a label.")
THRESHOLD = typer.Option(3.0, help="With --rating-column: a rating above this is positive.")
STRICT = typer.Option(False, help="Stop at the first unusable row instead of leaving it out (and reporting it).")


def _read(path: Path, text_column: str, label_column: str, rating_column: Optional[str], threshold: float,
          strict: bool, labelled: bool = True):
    from rankkit.sentiment.data import LabelSpec, read_reviews

    reviews = read_reviews(path, LabelSpec(text_column, label_column, rating_column, threshold), labelled, strict)
    console.print(reviews.summary())
    return reviews


@app.command()
@friendly_errors
def train(
    train_file: Path = typer.Option(..., "--train", help="Labelled training reviews (CSV or JSONL)."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder: model/, sentiment_config.json, logs."),
    method: Method = typer.Option(Method.contrastive, "--model", help=(
        "tfidf: char n-gram TF-IDF + logistic regression (seconds); transformer: fine-tuned classifier; "
        "contrastive: transformer + supervised contrastive term on mined opposite-label neighbours, "
        "DBPM-weighted; self-training: contrastive + pseudo-labelled --unlabeled reviews.")),
    val: Optional[Path] = typer.Option(None, help="Labelled validation reviews: metrics printed and saved."),
    unlabeled: Optional[Path] = typer.Option(None, help="Unlabelled reviews (text column only), for self-training."),
    base_model: str = typer.Option("default", help="Encoder checkpoint: folder or hub id (default: packaged MiniLM)."),
    epochs: int = typer.Option(4, callback=AT_LEAST_1),
    batch_size: int = typer.Option(16, callback=AT_LEAST_1),
    lr: float = typer.Option(5e-5, callback=POSITIVE, help="Peak learning rate."),
    max_length: int = typer.Option(128, callback=AT_LEAST_1, help="Token limit per review."),
    normalize: bool = typer.Option(True, help="Normalise code-mixed text (NFC, case, elongations, "
                                              "punctuation runs, emoji tokens); --no-normalize keeps it as is."),
    contrastive_weight: float = typer.Option(0.5, callback=NON_NEGATIVE, help="Weight of the supervised contrastive term."),
    temperature: float = typer.Option(0.1, callback=POSITIVE, help="Temperature of the supervised contrastive term."),
    embedding: Pooling = typer.Option(Pooling.mean, help="Embedding of the contrastive term and the mining: mean "
                                                          "(mean-pooled tokens) or cls (the first token, which the "
                                                          "classification head reads)."),
    negatives: int = typer.Option(4, callback=AT_LEAST_1, help="Mined opposite-label neighbours per review."),
    confidence: float = typer.Option(0.9, callback=number_check(0, 1), help="Self-training: keep pseudo-labels at least this confident."),
    seed: int = typer.Option(0),
    text_column: str = TEXT_COLUMN,
    label_column: str = LABEL_COLUMN,
    rating_column: Optional[str] = RATING_COLUMN,
    threshold: float = THRESHOLD,
    strict: bool = STRICT,
    device: Optional[str] = typer.Option(None, help="auto (default), cpu or cuda."),
    train_precision: TrainPrecision = typer.Option(TrainPrecision.auto, help=TRAIN_PRECISION_HELP),
    overwrite: bool = typer.Option(False, help="Start afresh in --output."),
) -> None:
    """Train a sentiment classifier; with --val, report its metrics on the validation reviews."""
    from rankkit.sentiment.metrics import format_metrics
    from rankkit.sentiment.train import SentimentConfig, train_sentiment

    columns = (text_column, label_column, rating_column, threshold, strict)
    reviews = _read(train_file, *columns)
    val_reviews = _read(val, *columns) if val else None
    extra = _read(unlabeled, text_column, label_column, None, threshold, strict, labelled=False) if unlabeled else None
    config = SentimentConfig(output=str(output), method=method.value, base_model=base_model, normalize=normalize,
                             epochs=epochs, batch_size=batch_size, lr=lr, max_length=max_length, seed=seed,
                             device=device, train_precision=train_precision.value, overwrite=overwrite,
                             contrastive_weight=contrastive_weight, temperature=temperature,
                             embedding=embedding.value, negatives=negatives,
                             confidence=confidence)
    folder = train_sentiment(reviews.texts, reviews.labels, config,
                             (val_reviews.texts, val_reviews.labels) if val_reviews else None,
                             extra.texts if extra else ())
    console.print(f"model saved in {folder}")
    if val_reviews:
        import json

        console.print(format_metrics(json.loads((output / "val_metrics.json").read_text())))


@app.command()
@friendly_errors
def adapt(
    texts: list[Path] = typer.Option(..., "--texts", help="Reviews to adapt on (CSV or JSONL, the text column only); "
                                                         "repeat for several files, e.g. the training and the "
                                                         "unlabelled reviews (never the reviews you evaluate on)."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder: model/ (pass it to `train --base-model`), "
                                                            "train_log.jsonl, config.json."),
    base_model: str = typer.Option("default", help="Encoder checkpoint: folder or hub id (default: packaged MiniLM)."),
    epochs: int = typer.Option(3, callback=AT_LEAST_1),
    batch_size: int = typer.Option(32, callback=AT_LEAST_1, help="Reviews per step."),
    lr: float = typer.Option(1e-4, callback=POSITIVE, help="Peak learning rate."),
    mask_probability: float = typer.Option(0.15, callback=number_check(0, 1, low_open=True, high_open=True),
                                           help="Share of tokens masked for prediction."),
    max_length: int = typer.Option(128, callback=AT_LEAST_1, help="Token limit per review."),
    normalize: bool = typer.Option(True, help="Normalise the reviews as `train` does (keep the same setting)."),
    seed: int = typer.Option(0),
    text_column: str = TEXT_COLUMN,
    strict: bool = STRICT,
    device: Optional[str] = typer.Option(None, help="auto (default), cpu or cuda."),
    train_precision: TrainPrecision = typer.Option(TrainPrecision.auto, help=TRAIN_PRECISION_HELP),
    overwrite: bool = typer.Option(False, help="Start afresh in --output."),
) -> None:
    """Adapt an encoder to the reviews' language (masked-LM training on unlabelled text) before `train`."""
    from rankkit.sentiment.adapt import AdaptConfig, adapt_encoder

    reviews = [text for path in texts for text in _read(path, text_column, "label", None, 3.0, strict,
                                                         labelled=False).texts]
    config = AdaptConfig(output=str(output), base_model=base_model, epochs=epochs, batch_size=batch_size, lr=lr,
                         mask_probability=mask_probability, max_length=max_length, normalize=normalize, seed=seed,
                         device=device, train_precision=train_precision.value, overwrite=overwrite)
    folder = adapt_encoder(reviews, config)
    console.print(f"adapted encoder saved in {folder}; fine-tune it with `rankkit sentiment train --base-model {folder}`")


@app.command("eval")
@friendly_errors
def evaluate(
    model: Path = typer.Option(..., help="Sentiment model folder (from `rankkit sentiment train`)."),
    data: Path = typer.Option(..., help="Labelled reviews (CSV or JSONL)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o",
                                          help="Folder for metrics.json and roc.png, pr.png, reliability.png."),
    text_column: str = TEXT_COLUMN,
    label_column: str = LABEL_COLUMN,
    rating_column: Optional[str] = RATING_COLUMN,
    threshold: float = THRESHOLD,
    strict: bool = STRICT,
    device: Optional[str] = typer.Option(None, help="auto (default), cpu or cuda."),
    precision: Precision = typer.Option(Precision.fp32, help=PRECISION_HELP),
) -> None:
    """Accuracy, macro-F1, per-class P/R/F1, AUROC, AUPRC (with the positive prior), confusion, ECE; plots."""
    import json

    from rankkit.data.files import atomic_write
    from rankkit.sentiment.metrics import format_metrics, model_name, plot_curves, sentiment_metrics
    from rankkit.sentiment.model import load_sentiment_model

    reviews = _read(data, text_column, label_column, rating_column, threshold, strict)
    classifier = load_sentiment_model(model, device, precision.value)
    probability = classifier.predict_proba(reviews.texts)
    measured = sentiment_metrics(reviews.labels, probability)
    measured["left_out_rows"] = [{"line": p.line, "reason": p.reason} for p in reviews.problems]
    console.print(format_metrics(measured))
    if output is not None:
        with atomic_write(output / "metrics.json") as out:
            json.dump(measured, out, indent=2)
        written = plot_curves(reviews.labels, probability, output, name=model_name(model))
        console.print(f"wrote {output / 'metrics.json'}, " + ", ".join(str(p) for p in written))


@app.command()
@friendly_errors
def predict(
    model: Path = typer.Option(..., help="Sentiment model folder (from `rankkit sentiment train`)."),
    input: Path = typer.Option(..., "--input", "-i", help="Reviews (CSV or JSONL); only the text column is read."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="JSONL predictions (default: stdout)."),
    text_column: str = TEXT_COLUMN,
    strict: bool = STRICT,
    device: Optional[str] = typer.Option(None, help="auto (default), cpu or cuda."),
    precision: Precision = typer.Option(Precision.fp32, help=PRECISION_HELP),
) -> None:
    """Label each review positive or negative, with P(positive), as JSONL."""
    from rankkit.sentiment.data import LabelSpec, read_reviews, write_predictions
    from rankkit.sentiment.model import load_sentiment_model

    reviews = read_reviews(input, LabelSpec(text_column=text_column), labelled=False, strict=strict)
    if output is not None or reviews.problems:  # stdout stays pure JSONL when it carries the predictions
        Console(stderr=True, highlight=False, soft_wrap=True).print(reviews.summary())
    classifier = load_sentiment_model(model, device, precision.value)
    write_predictions(reviews, classifier.predict_proba(reviews.texts), output)
