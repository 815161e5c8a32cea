"""The light selection model of CET: P(selected for judging | provenance), an MLP over each
document's provenance in the pooling retriever instead of a second cross-encoder.

Features of a (query, document): [retrieved, log-rank share, score z-scored within the query and
source, one-hot source]. A positive no source retrieved gets [0, 1, 0, 0...]. Far cheaper than a
cross-encoder: the features are computed once, and the model has a few hundred weights.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from rankkit.errors import RankkitError
from rankkit.mining.minedset import MinedSet
from rankkit.train.examples import Group

FEATURES_FILE = "provenance.json"
WEIGHTS_FILE = "selection.pt"


def require_provenance(mined: MinedSet, where: str = "the MinedSet") -> None:
    """The light selection model needs each negative's source, rank and score (every positive's
    provenance record is there: the MinedSet reader requires it); say which are missing and how to get them."""
    missing = set()
    for q in mined.queries:
        for c in q.negatives:
            missing |= {f"negatives[].{name}" for name in ("source", "rank", "score") if getattr(c, name) in (None, "")}
    if missing:
        raise RankkitError(
            f"{where} lacks the provenance the provenance selection model needs: "
            f"{', '.join(sorted(missing))}. Fix: re-mine it with `rankkit mine`, which records the "
            "source, rank and score of every negative and positive, or use --selection cross-encoder"
        )


class ProvenanceFeatures:
    """Feature vectors of every (query, document) in a MinedSet, computed once."""

    def __init__(self, mined: MinedSet, sources: list[str] | None = None, max_rank: int | None = None):
        require_provenance(mined)
        self.sources = sources or sorted(
            {c.source for q in mined.queries for c in (*q.negatives, *q.positive_provenance.values())}
        )
        self.max_rank = max_rank or max((c.rank for q in mined.queries for c in q.negatives), default=1)
        self.table: dict[tuple[str, str], np.ndarray] = {}
        for q in mined.queries:
            found = [*q.negatives, *q.positive_provenance.values()]
            stats = {}
            for source in {c.source for c in found}:
                scores = np.array([c.score for c in found if c.source == source], dtype=np.float64)
                stats[source] = (scores.mean(), scores.std() or 1.0)
            for c in found:
                mean, std = stats[c.source]
                self.table[q.qid, c.docid] = self._vector(True, c.rank, (c.score - mean) / std, c.source)

    @property
    def size(self) -> int:
        return 3 + len(self.sources)

    def _vector(self, retrieved: bool, rank: int, z_score: float, source: str | None) -> np.ndarray:
        vector = np.zeros(self.size, dtype=np.float32)
        vector[0] = float(retrieved)
        vector[1] = min(1.0, math.log1p(rank) / math.log1p(self.max_rank)) if retrieved else 1.0
        vector[2] = z_score
        if source in self.sources:
            vector[3 + self.sources.index(source)] = 1.0
        return vector

    def of(self, qid: str, docid: str) -> np.ndarray:
        return self.table.get((qid, docid), self._vector(False, 0, 0.0, None))


class ProvenanceScorer:
    kind = "provenance"

    def __init__(self, features: ProvenanceFeatures, hidden: int = 16, device: torch.device | None = None):
        self.features, self.hidden = features, hidden
        self.device = device or torch.device("cpu")
        self.module = torch.nn.Sequential(
            torch.nn.Linear(features.size, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1)
        ).to(self.device)

    def group_scores(self, batch: list[Group]) -> torch.Tensor:
        rows = [[self.features.of(g.qid, d) for d in (g.positive_id, *g.negative_ids)] for g in batch]
        return self.module(torch.from_numpy(np.array(rows)).to(self.device)).squeeze(-1)

    def score_documents(
        self, qid: str, queries: Sequence[str], docids: Sequence[str], passages: Sequence[str]
    ) -> np.ndarray:
        """Scores from provenance alone: the texts are not used."""
        with torch.no_grad():
            rows = np.array([self.features.of(qid, d) for d in docids])
            return self.module(torch.from_numpy(rows).to(self.device)).squeeze(-1).cpu().numpy()

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(self.module.state_dict(), folder / WEIGHTS_FILE)
        (folder / FEATURES_FILE).write_text(
            json.dumps({"sources": self.features.sources, "hidden": self.hidden, "max_rank": self.features.max_rank})
        )

    @classmethod
    def load(cls, folder: Path, mined: MinedSet) -> "ProvenanceScorer":
        meta = json.loads((folder / FEATURES_FILE).read_text())
        scorer = cls(ProvenanceFeatures(mined, meta["sources"], meta["max_rank"]), meta["hidden"])
        scorer.module.load_state_dict(torch.load(folder / WEIGHTS_FILE, weights_only=True))
        return scorer
