"""SPLADE retrieval: queries encoded by the index's own SPLADE model into integer impacts, searched
in its Lucene impact index."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Mapping

from rankkit.data.runs import Hit, Run
from rankkit.encode.backend import backend_note
from rankkit.encode.splade import SpladeEncoder, quantize
from rankkit.errors import RankkitError
from rankkit.index.splade import open_impact_searcher
from rankkit.options import TORCH_INFERENCE, Inference
from rankkit.retrieve.base import check_k, check_query


class SpladeRetriever:
    """Search a SPLADE index with the model that built it (its fingerprint is checked)."""

    def __init__(
        self,
        folder: str | Path,
        device: str | None = None,
        precision: str = "fp32",
        threads: int = 2,
        inference: Inference = TORCH_INFERENCE,
    ):
        self.searcher, manifest = open_impact_searcher(folder)
        sample = manifest.corpus.sample() if inference.exported else None
        self.encoder = SpladeEncoder(
            manifest.model or "", device=device, precision=precision, inference=inference, sample=sample
        )
        if self.encoder.fingerprint != manifest.model_fingerprint:
            raise RankkitError(
                f"{folder} was built with the SPLADE model {manifest.model!r} (fingerprint "
                f"{manifest.model_fingerprint}), but that folder now holds another model (fingerprint "
                f"{self.encoder.fingerprint}). Fix: restore the model, or rebuild the index with it"
            )
        self.threads = threads
        self.name = f"splade:{Path(folder).name}"
        note = backend_note(manifest.settings, self.encoder.runner, str(folder))
        if note:
            print(note, file=sys.stderr)

    def query_impacts(self, texts: list[str]) -> list[dict[str, int]]:
        """Each query's {term: integer impact}, as the index's passages were quantised."""
        return [quantize(weights) for weights in self.encoder.encode(texts, "query")]

    def score_pairs(self, queries: list[str], passages: list[str]) -> list[float]:
        """Each (query, passage)'s score as search computes it: the sum over shared terms of query
        impact x passage impact."""
        passage_impacts = [quantize(weights) for weights in self.encoder.encode(passages, "passage")]
        return [
            float(sum(impact * passage.get(term, 0) for term, impact in query.items()))
            for query, passage in zip(self.query_impacts(queries), passage_impacts)
        ]

    def search(self, query: str, k: int = 10) -> list[Hit]:
        impacts = self.query_impacts([check_query(query)])[0]
        return [Hit(h.docid, float(h.score)) for h in self.searcher.search(impacts, check_k(k))]

    def batch_search(self, queries: Mapping[str, str], k: int = 10) -> Run:
        check_k(k)
        qids = list(queries)
        impacts = self.query_impacts([check_query(queries[qid]) for qid in qids])
        found = self.searcher.batch_search(impacts, qids, k, self.threads)
        return {qid: [Hit(h.docid, float(h.score)) for h in found.get(qid, [])] for qid in qids}
