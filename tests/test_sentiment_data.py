"""Sentiment inputs: code-mixed normalisation, rating -> label, and review files whose unusable
rows are counted and reported by line (or, with strict, refused)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import assert_file_error

from rankkit.errors import RankkitError
from rankkit.sentiment.data import LabelSpec, rating_to_label, read_reviews, write_predictions
from rankkit.sentiment.normalize import normalize_all, normalize_review


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("valooooo", "valoo"),  # elongated letters cut to two
        ("Khub VALO", "khub valo"),  # case
        ("sooo goood", "soo good"),
        ("1000 taka", "1000 taka"),  # digits are never cut
        ("ki!!!! eta???", "ki! eta?"),  # runs of one punctuation mark
        ("?!?!", "?!?!"),  # mixed marks stay
        ("valo😡😡", "valo 😡 😡"),  # emoji become tokens, each kept
        ("thanks 🙏🏽", "thanks 🙏🏽"),  # skin tone stays on its emoji
        ("❤️❤️", "❤️ ❤️"),  # variation selector stays on its emoji
        ("ভালো   পণ্য", "ভালো পণ্য"),  # Bengali script kept, whitespace collapsed
        ("  spaces\tand\nlines  ", "spaces and lines"),
    ],
)
def test_normalize_review_examples(raw, expected):
    assert normalize_review(raw) == expected


def test_normalize_composes_bengali_to_nfc():
    decomposed = "\u09c7\u09be"  # e-kar + aa-kar, composed as U+09CB (o-kar) by NFC
    assert normalize_review("ক" + decomposed) == "ক\u09cb"


def test_normalize_can_be_switched_off():
    texts = ["VALOOOO!!!"]
    assert normalize_all(texts, enabled=False) == texts
    assert normalize_all(texts) == ["valoo!"]


@pytest.mark.parametrize(
    "rating, threshold, label",
    [(5, 3, 1), (4, 3, 1), (3.5, 3, 1), (3, 3, 0), (1, 3, 0), (4, 4, 0), (4.5, 4, 1), (2, 1.5, 1)],
)
def test_rating_to_label_uses_a_strict_threshold(rating, threshold, label):
    assert rating_to_label(rating, threshold) == label


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_ratings_become_labels_with_a_settable_threshold(tmp_path):
    path = write(tmp_path / "r.csv", "text,stars\na,5\nb,4\nc,3\nd,1\n")
    assert read_reviews(path, LabelSpec(rating_column="stars")).labels == [1, 1, 0, 0]
    assert read_reviews(path, LabelSpec(rating_column="stars", threshold=4)).labels == [1, 0, 0, 0]


def test_bad_rows_are_counted_and_reported_by_line(tmp_path):
    path = write(
        tmp_path / "r.csv",
        'text,label\nvalo,1\n,1\nbaje,maybe\n"two\nlines",0\nno label,\nok,positive\n   ,0\nfine,1.0\n',
    )
    reviews = read_reviews(path)
    assert reviews.texts == ["valo", "two lines", "ok", "fine"]
    assert reviews.labels == [1, 0, 1, 1]
    assert reviews.lines == [2, 5, 8, 10]
    assert [(p.line, p.reason.split(" (")[0]) for p in reviews.problems] == [
        (3, "empty text"),
        (4, "unknown label 'maybe'"),
        (7, "missing label"),
        (9, "empty text"),
    ]
    summary = reviews.summary()
    assert "4 usable rows" in summary and "4 rows left out" in summary
    assert "negative 1 (25.0%), positive 3 (75.0%)" in summary
    assert "line 3: empty text" in summary and "line 7: missing label" in summary


def test_non_numeric_and_missing_ratings_are_reported(tmp_path):
    path = write(tmp_path / "r.csv", "text,rating\na,five\nb,\nc,nan\nd,2\n")
    reviews = read_reviews(path, LabelSpec(rating_column="rating"))
    assert reviews.labels == [0]
    assert [p.reason for p in reviews.problems] == [
        "non-numeric rating 'five'",
        "missing rating",
        "non-numeric rating 'nan'",
    ]


def test_strict_refuses_the_first_bad_row(tmp_path):
    path = write(tmp_path / "r.csv", "text,label\nvalo,1\nbaje,maybe\n,1\n")
    with pytest.raises(RankkitError) as excinfo:
        read_reviews(path, strict=True)
    assert_file_error(excinfo, path, 3, "unknown label", "--strict")


def test_jsonl_reviews_with_labels_by_name(tmp_path):
    path = write(
        tmp_path / "r.jsonl",
        "\n".join(
            json.dumps(r)
            for r in [
                {"review": "valo", "sentiment": "Positive"},
                {"review": "baje", "sentiment": "neg"},
                {"review": "x", "sentiment": 1},
                {"review": "y", "sentiment": True},
                {"review": "z", "sentiment": 2},
                {"review": None, "sentiment": 1},
            ]
        )
        + "\n",
    )
    reviews = read_reviews(path, LabelSpec(text_column="review", label_column="sentiment"))
    assert reviews.labels == [1, 0, 1, 1]
    assert [(p.line, p.reason.split(" (")[0]) for p in reviews.problems] == [(5, "unknown label 2"), (6, "empty text")]


def test_missing_column_names_the_option(tmp_path):
    path = write(tmp_path / "r.csv", "review,label\nvalo,1\n")
    with pytest.raises(RankkitError) as excinfo:
        read_reviews(path)
    assert_file_error(excinfo, path, 2, "no column 'text'", "--text-column")


def test_a_file_with_no_usable_row_is_an_error(tmp_path):
    path = write(tmp_path / "r.csv", "text,label\n,1\n")
    with pytest.raises(RankkitError, match="no usable rows"):
        read_reviews(path)


def test_unlabelled_files_read_the_text_only(tmp_path):
    path = write(tmp_path / "u.csv", 'text\nvalo\n""\nbaje\n')
    reviews = read_reviews(path, labelled=False)
    assert reviews.texts == ["valo", "baje"] and reviews.labels is None
    assert [p.line for p in reviews.problems] == [3]


def test_predictions_are_jsonl_with_the_input_line(tmp_path):
    reviews = read_reviews(write(tmp_path / "u.csv", "text\nvalo\n,\nbaje\n"), labelled=False)
    write_predictions(reviews, [0.9, 0.2], tmp_path / "p.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert rows == [
        {"line": 2, "text": "valo", "label": "positive", "positive_probability": 0.9},
        {"line": 4, "text": "baje", "label": "negative", "positive_probability": 0.2},
    ]


def test_invalid_utf8_names_its_line(tmp_path):
    path = tmp_path / "r.csv"
    path.write_bytes(b'text,label\nvalo,1\nbhalo,1\n"bad\xff",0\n')
    with pytest.raises(RankkitError) as excinfo:
        read_reviews(path)
    assert_file_error(excinfo, path, 4, "not valid UTF-8")
