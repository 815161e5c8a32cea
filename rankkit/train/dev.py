"""Dev evaluation during training: rerank each dev query's candidates (e.g. a BM25 run) with the
model being trained and score the ranking with ir-measures. Cheap: no corpus re-encoding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from rankkit.data.qrels import Qrels
from rankkit.data.runs import Hit, Run
from rankkit.eval.measures import evaluate, resolve_measures

PairScorer = Callable[[Sequence[str], Sequence[str]], np.ndarray]  # (queries, passages) -> scores


@dataclass(frozen=True)
class DevSet:
    queries: Mapping[str, str]
    qrels: Qrels
    candidates: Run  # per query, the documents to rerank
    doc_texts: Mapping[str, str]
    measures: tuple[str, ...] = ("nDCG@10", "R@100")
    source: str = "the dev run"  # where the candidates come from (the run's file name), for reports

    def _read(self) -> dict[str, list[str]]:
        """Each dev query's candidates that have text, in the run's order."""
        return {
            qid: [h.docid for h in hits if h.docid in self.doc_texts]
            for qid, hits in self.candidates.items()
            if qid in self.queries
        }

    def first_stage(self) -> dict[str, float]:
        """The figures of the candidates in their own order: what a reranker must beat."""
        ranked: Run = {qid: [Hit(d, -rank) for rank, d in enumerate(docids)] for qid, docids in self._read().items()}
        return evaluate(ranked, self.qrels, resolve_measures(None, self.measures)).aggregate

    def evaluator(self, score_pairs: PairScorer) -> Callable[[], dict[str, float]]:
        measures = resolve_measures(None, self.measures)

        def run() -> dict[str, float]:
            reranked: Run = {}
            for qid, docids in self._read().items():
                scores = score_pairs([self.queries[qid]] * len(docids), [self.doc_texts[d] for d in docids])
                reranked[qid] = [Hit(d, float(s)) for d, s in zip(docids, scores)]
            return evaluate(reranked, self.qrels, measures).aggregate

        return run
