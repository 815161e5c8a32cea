"""Review files for sentiment: CSV (with a header row) or JSONL, a text column and either a label
or a star rating.

Labels: 1/0, positive/negative, pos/neg (any case). A rating becomes a label by a threshold:
positive when rating > threshold (BanglishRev's rule, threshold 3). Rows that cannot be used
(empty text, a missing or non-numeric label or rating, an unknown label value) are never dropped
silently: each is kept in `Reviews.problems` with its line, and strict reading raises on the first.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from rankkit.data.files import atomic_write, iter_lines, json_object
from rankkit.errors import RankkitError, file_error

LABEL_NAMES = ("negative", "positive")  # label 0, label 1
_LABEL_VALUES = {"0": 0, "1": 1, "negative": 0, "positive": 1, "neg": 0, "pos": 1}
DEFAULT_THRESHOLD = 3.0


@dataclass(frozen=True)
class LabelSpec:
    """Which columns to read: the text, and the label or the rating (with its threshold)."""

    text_column: str = "text"
    label_column: str = "label"
    rating_column: str | None = None  # when set, labels come from this column
    threshold: float = DEFAULT_THRESHOLD  # rating > threshold is positive


@dataclass(frozen=True)
class Problem:
    line: int
    reason: str


@dataclass
class Reviews:
    """The usable rows of a file (labels are None for unlabelled files) and the rows left out."""

    path: Path
    texts: list[str] = field(default_factory=list)
    labels: list[int] | None = None
    lines: list[int] = field(default_factory=list)  # the line each usable row starts on
    problems: list[Problem] = field(default_factory=list)

    def balance(self) -> dict[str, int]:
        """Rows per class name."""
        counts = Counter(self.labels or [])
        return {name: counts.get(label, 0) for label, name in enumerate(LABEL_NAMES)}

    def summary(self) -> str:
        """One line: the file, usable rows, class balance and the rows left out (up to 5 lines named)."""
        parts = [f"{self.path}: {len(self.texts)} usable rows"]
        if self.labels is not None:
            balance = self.balance()
            total = max(1, len(self.labels))
            parts.append(", ".join(f"{name} {n} ({n / total:.1%})" for name, n in balance.items()))
        if self.problems:
            shown = "; ".join(f"line {p.line}: {p.reason}" for p in self.problems[:5])
            more = f"; and {len(self.problems) - 5} more" if len(self.problems) > 5 else ""
            rows = "row" if len(self.problems) == 1 else "rows"
            parts.append(f"{len(self.problems)} {rows} left out ({shown}{more})")
        return "; ".join(parts)


def rating_to_label(rating: float, threshold: float = DEFAULT_THRESHOLD) -> int:
    """1 (positive) when rating > threshold, else 0."""
    return int(rating > threshold)


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _records(path: Path) -> Iterator[tuple[int, dict]]:
    """(line, record) for each row of a CSV or JSONL file."""
    if path.suffix.lower() in (".jsonl", ".json") or path.name.endswith(".jsonl.gz"):
        for number, line in iter_lines(path):
            yield (
                number,
                json_object(path, number, line, 'write one object per line, such as {"text": ..., "label": 1}'),
            )
        return
    if not path.is_file():
        raise RankkitError(f"{path}: no such file. Fix: check the path (relative paths start at {Path.cwd()})")
    start = 1  # the line the current record starts on
    with open(path, encoding="utf-8-sig", newline="") as handle:  # a spreadsheet's byte-order mark dropped
        try:
            reader = csv.DictReader(handle)
            if not reader.fieldnames:
                raise file_error(path, 1, "no header row", "start the CSV with a header such as text,label")
            start = reader.line_num + 1
            for row in reader:
                yield start, row
                start = reader.line_num + 1
        except UnicodeDecodeError as exc:  # decoded ahead in chunks: find the line in the bytes
            line = next(n for n, raw in enumerate(path.read_bytes().split(b"\n"), start=1) if not _is_utf8(raw))
            raise file_error(path, line, f"not valid UTF-8 ({exc.reason})", "re-encode the file as UTF-8") from None
        except csv.Error as exc:
            raise file_error(path, start, f"not a readable CSV ({exc})", "write standard CSV quoting") from None


def _label(value: object, spec: LabelSpec) -> tuple[int | None, str | None]:
    """(label, None), or (None, why the value cannot be used)."""
    column = spec.rating_column or spec.label_column
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, f"missing {column}"
    if spec.rating_column:
        try:
            rating = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None, f"non-numeric rating {value!r}"
        if math.isnan(rating):
            return None, f"non-numeric rating {value!r}"
        return rating_to_label(rating, spec.threshold), None
    key = str(value).strip().lower()
    try:  # 1, 1.0, "1.0" and True all mean positive
        key = str(int(float(key))) if float(key).is_integer() else key
    except ValueError:
        pass
    if key == "true" or key == "false":
        key = str(int(key == "true"))
    if key not in _LABEL_VALUES:
        return None, f"unknown label {value!r} (use 1/0, positive/negative or pos/neg)"
    return _LABEL_VALUES[key], None


def read_reviews(
    path: str | Path, spec: LabelSpec = LabelSpec(), labelled: bool = True, strict: bool = False
) -> Reviews:
    """Read a review file. With labelled=False only the text column is read (labels stay None).

    Raises RankkitError when a needed column is absent, when no row is usable, or, with
    strict=True, at the first unusable row."""
    path = Path(path)
    reviews = Reviews(path, labels=[] if labelled else None)
    needed = [spec.text_column] + ([spec.rating_column or spec.label_column] if labelled else [])
    for number, record in _records(path):
        absent = [column for column in needed if column not in record]
        if absent and not reviews.texts and not reviews.problems:
            raise file_error(
                path,
                number,
                f"no column {absent[0]!r} (columns: {', '.join(map(str, record))})",
                f"name the column with --{'text' if absent[0] == spec.text_column else 'rating' if spec.rating_column else 'label'}-column",
            )
        text = record.get(spec.text_column)
        reason = None if isinstance(text, str) and text.strip() else "empty text"
        label = None
        if reason is None and labelled:
            label, reason = _label(record.get(spec.rating_column or spec.label_column), spec)
        if reason is not None:
            if strict:
                raise file_error(
                    path,
                    number,
                    f"unusable row ({reason})",
                    "fix or remove the row, or drop --strict to leave such rows out",
                )
            reviews.problems.append(Problem(number, reason))
            continue
        reviews.texts.append(" ".join(str(text).split()))
        reviews.lines.append(number)
        if reviews.labels is not None:
            reviews.labels.append(label)  # type: ignore[arg-type]
    if not reviews.texts:
        raise RankkitError(
            f"{path}: no usable rows ({len(reviews.problems)} left out). "
            f"Fix: give a file with a {spec.text_column!r} column"
            + (f" and a {spec.rating_column or spec.label_column!r} column" if labelled else "")
        )
    return reviews


def write_predictions(reviews: Reviews, positive_probability: Sequence[float], path: str | Path | None) -> None:
    """JSONL, one line per usable review: its line in the input, text, predicted label and
    P(positive); to stdout when `path` is None, else written atomically."""
    lines = (
        json.dumps(
            {
                "line": line,
                "text": text,
                "label": LABEL_NAMES[int(p >= 0.5)],
                "positive_probability": round(float(p), 6),
            },
            ensure_ascii=False,
        )
        + "\n"
        for line, text, p in zip(reviews.lines, reviews.texts, positive_probability)
    )
    if path is None:
        sys.stdout.writelines(lines)
        return
    with atomic_write(path) as out:
        out.writelines(lines)
