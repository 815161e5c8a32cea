"""`rankkit sentiment train|eval|predict` on the bundled sample reviews (TF-IDF: seconds); the
sample's unusable rows are reported by line, and --strict refuses them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import usage_error
from typer.testing import CliRunner

from rankkit.cli.app import app

SAMPLE = Path(__file__).resolve().parents[1] / "rankkit" / "sentiment" / "sample" / "reviews.csv"
runner = CliRunner()


def invoke(*args: str | Path):
    return runner.invoke(app, ["sentiment", *map(str, args)])


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("sentiment") / "run"
    result = invoke(
        "train",
        "--reviews",
        SAMPLE,
        "--rating-column",
        "rating",
        "--method",
        "tfidf",
        "-o",
        output,
        "--val",
        SAMPLE,
        "--embedding",
        "cls",
    )
    assert result.exit_code == 0, result.output
    assert "31 usable rows; negative 16 (51.6%), positive 15 (48.4%); 2 rows left out" in result.output
    assert "line 33: empty text; line 34: non-numeric rating 'five'" in result.output
    assert "accuracy" in result.output and "positive prior 0.4839" in result.output
    return output


def test_train_writes_the_model_and_val_metrics(trained):
    assert (trained / "model" / "sentiment.json").is_file()
    assert json.loads((trained / "val_metrics.json").read_text())["count"] == 31
    assert json.loads((trained / "sentiment_config.json").read_text())["embedding"] == "cls"  # the option reaches it


def test_strict_makes_bad_rows_an_error(tmp_path):
    result = invoke(
        "train",
        "--reviews",
        SAMPLE,
        "--rating-column",
        "rating",
        "--method",
        "tfidf",
        "-o",
        tmp_path / "strict",
        "--strict",
    )
    assert result.exit_code == 2
    assert f"{SAMPLE}:33: unusable row (empty text)" in result.stderr and "Fix:" in result.stderr
    assert not (tmp_path / "strict").exists()


def test_eval_writes_metrics_and_plots(trained, tmp_path):
    pytest.importorskip("matplotlib")
    result = invoke("eval", "--model", trained, "--reviews", SAMPLE, "--rating-column", "rating", "-o", tmp_path / "e")
    assert result.exit_code == 0, result.output
    measured = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert measured["left_out_rows"] == [
        {"line": 33, "reason": "empty text"},
        {"line": 34, "reason": "non-numeric rating 'five'"},
    ]
    assert {"accuracy", "macro_f1", "auroc", "auprc", "positive_prior", "ece", "confusion_matrix"} <= set(measured)
    assert sorted(p.name for p in (tmp_path / "e").glob("*.png")) == ["pr.png", "reliability.png", "roc.png"]


def test_eval_plots_carry_the_models_name(trained, tmp_path, monkeypatch):
    # regression: the command's plots were titled "Classifier", then "model": name the model evaluated
    from rankkit.sentiment import metrics

    names = []
    monkeypatch.setattr(metrics, "plot_curves", lambda *args, name: names.append(name) or [])
    result = invoke("eval", "--model", trained, "--reviews", SAMPLE, "--rating-column", "rating", "-o", tmp_path / "e")
    assert result.exit_code == 0, result.output
    assert names == ["tfidf"]


def test_predict_writes_jsonl_with_lines(trained, tmp_path):
    result = invoke("predict", "--model", trained, "--reviews", SAMPLE, "-o", tmp_path / "p.jsonl")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(rows) == 32 and rows[0]["line"] == 2  # the text column only: "valo jinis" (rating 'five') counts
    assert {r["label"] for r in rows} == {"positive", "negative"}
    assert "line 33: empty text" in result.stderr


def test_a_folder_that_is_no_model_is_a_clear_error(tmp_path):
    result = invoke("predict", "--model", tmp_path, "--reviews", SAMPLE)
    assert result.exit_code == 2 and "not a sentiment model folder" in result.stderr


@pytest.mark.parametrize(
    "option, value, fragment",
    [
        ("--epochs", "0", ">= 1"),
        ("--batch-size", "0", ">= 1"),
        ("--lr", "nan", "> 0"),
        ("--confidence", "2", "<= 1"),
        ("--precision", "fp16", "auto"),
        ("--embedding", "max", "cls"),
    ],
)
def test_numeric_options_are_range_checked_at_parse_time(tmp_path, option, value, fragment):
    # as every other command's (issue 13): the trainer never sees a zero batch or a nan rate
    result = CliRunner().invoke(
        app, ["sentiment", "train", "--reviews", str(tmp_path / "none.csv"), "-o", str(tmp_path / "out"), option, value]
    )
    usage_error(result, option, fragment)


def _reviews(path: Path, ratings: list[int]) -> Path:
    texts = ["khub valo jinis", "ekdom baje product", "valo laglo onek", "baje quality, taka nosto", "darun"]
    path.write_text("text,rating\n" + "".join(f'"{texts[i % len(texts)]} {i}",{r}\n' for i, r in enumerate(ratings)))
    return path


def test_tfidf_trains_on_a_four_review_file(tmp_path):
    # regression: sklearn's "n_splits=5 cannot be greater than the number of members in each class"
    reviews = _reviews(tmp_path / "four.csv", [5, 1, 5, 1])
    result = invoke(
        "train", "--reviews", reviews, "--rating-column", "rating", "--method", "tfidf", "-o", tmp_path / "m"
    )
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    config = json.loads((tmp_path / "m" / "sentiment_config.json").read_text())
    assert config["train_reviews"] == 4
    assert "2-fold cross-validation" in result.output  # fewer folds than 5, said once


def test_tfidf_with_one_review_of_a_label_is_one_error_saying_how_many_are_needed(tmp_path):
    reviews = _reviews(tmp_path / "three.csv", [5, 1, 5])
    result = invoke(
        "train", "--reviews", reviews, "--rating-column", "rating", "--method", "tfidf", "-o", tmp_path / "m"
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    error = " ".join(result.stderr.split())
    assert "at least 2 training reviews of each label" in error and "1 negative" in error and "Fix:" in error, error
    assert not (tmp_path / "m").exists()
