"""A trained reranker's dev record: its dev figure beside its first stage's on the very same
candidates, kept in the model folder.

`rankkit train reranker` writes it when it has a dev set; `rankkit rerank`, `rankkit serve
--reranker` and the search page show it, so a reranker that ranks worse than the run it reorders
never goes unnoticed."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from rankkit.data.files import atomic_write
from rankkit.errors import RankkitError

RECORD_FILE = "rankkit_dev_record.json"
NO_RECORD = (
    "no dev record (trained without a dev set, or not by rankkit train reranker): whether it improves on "
    "its first stage is unknown"
)


@dataclass(frozen=True)
class DevRecord:
    measure: str  # e.g. nDCG@10
    reranker: float  # the trained reranker over the dev candidates
    first_stage: float  # the dev candidates in their own order
    queries: int
    candidates: str  # the dev run's file name

    @property
    def improves(self) -> bool:
        return self.reranker > self.first_stage

    def summary(self) -> str:
        verdict = "better than" if self.improves else "NOT better than"
        return (
            f"dev {self.measure} {self.reranker:.4f} against {self.first_stage:.4f} for its first stage "
            f"({self.candidates}, {self.queries} queries): {verdict} the ranking it reorders"
        )

    def write(self, folder: Path) -> None:
        with atomic_write(Path(folder) / RECORD_FILE) as out:
            json.dump(asdict(self), out, indent=2)

    @classmethod
    def read(cls, folder: str | Path) -> DevRecord | None:
        """The record of a model folder; None when it has none."""
        path = Path(folder) / RECORD_FILE
        if not path.is_file():
            return None
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
            names = {f.name for f in fields(cls)}
            if not isinstance(values, dict) or set(values) != names:
                raise ValueError(f"expected the fields {sorted(names)}")
            return cls(**values)
        except (ValueError, TypeError) as exc:
            raise RankkitError(
                f"{path}: damaged dev record ({str(exc)[:200]}). Fix: delete it (the model stays usable) "
                "or retrain with a dev set"
            ) from None


def describe_reranker(folder: str | Path) -> str:
    """One line on how a reranker folder did on its dev set, or that it records nothing."""
    record = DevRecord.read(folder)
    return record.summary() if record else NO_RECORD
