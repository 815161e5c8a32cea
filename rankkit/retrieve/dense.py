"""Dense retrieval: encode queries with the index's own model, search the FAISS index."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Mapping

import numpy as np

from rankkit.data.runs import Hit, Run
from rankkit.encode.backend import backend_note
from rankkit.encode.biencoder import BiEncoder
from rankkit.errors import RankkitError
from rankkit.index.dense import DenseIndex
from rankkit.index.faiss_device import GpuOptions
from rankkit.options import TORCH_INFERENCE, Inference
from rankkit.retrieve.base import check_k, check_query


def check_model_matches(index: DenseIndex, encoder: BiEncoder) -> None:
    """Refuse a query model other than the one that built the index (or its declared query tower)."""
    built = index.manifest
    expected_name = built.query_model or built.model
    expected = built.query_model_fingerprint or built.model_fingerprint
    if encoder.dimension != built.dimension or encoder.fingerprint != expected:
        raise RankkitError(
            f"{index.folder} was built for query model {expected_name!r} (dimension {built.dimension}, fingerprint "
            f"{expected}), but the query model is {encoder.name!r} (dimension {encoder.dimension}, "
            f"fingerprint {encoder.fingerprint}). Fix: search with --model {expected_name}, or rebuild the index "
            f"with the query model (--query-model declares a separate query encoder)"
        )


class DenseRetriever:
    """Search a dense index; the query model defaults to the one named in its manifest (its query
    tower when one was declared)."""

    def __init__(self, index: DenseIndex, encoder: BiEncoder, batch_size: int = 256):
        check_model_matches(index, encoder)
        self.index, self.encoder, self.batch_size = index, encoder, batch_size
        self.name = f"dense:{index.folder.name}"
        note = backend_note(index.manifest.settings, encoder.runner, str(index.folder))
        if note:
            print(note, file=sys.stderr)

    @classmethod
    def from_folder(
        cls,
        folder: str | Path,
        model: str | None = None,
        device: str | None = None,
        search_params: dict[str, int] | None = None,
        precision: str = "fp32",
        query_prompt: str | None = None,
        gpu: GpuOptions = GpuOptions(),
        inference: Inference = TORCH_INFERENCE,
    ) -> "DenseRetriever":
        index = DenseIndex(folder, search_params, gpu)
        model = model or index.manifest.query_model or index.manifest.model
        sample = index.manifest.corpus.sample() if inference.exported else None
        encoder = BiEncoder(
            model, device=device, precision=precision, query_prompt=query_prompt, inference=inference, sample=sample
        )
        return cls(index, encoder)

    def score_pairs(self, queries: list[str], passages: list[str]) -> list[float]:
        """Each (query, passage)'s score as search computes it: the dot product of their embeddings."""
        q_vectors = self.encoder.encode(queries, role="query")
        return np.sum(q_vectors * self.encoder.encode(passages), axis=1).tolist()

    def search(self, query: str, k: int = 10) -> list[Hit]:
        return self.index.search(self.encoder.encode([check_query(query)], role="query"), check_k(k))[0]

    def batch_search(self, queries: Mapping[str, str], k: int = 10) -> Run:
        check_k(k)
        qids = list(queries)
        texts = [check_query(queries[qid]) for qid in qids]
        run: Run = {}
        for start in range(0, len(qids), self.batch_size):
            vectors = self.encoder.encode(texts[start : start + self.batch_size], role="query")
            for qid, hits in zip(qids[start : start + self.batch_size], self.index.search(vectors, k)):
                run[qid] = hits
        return run
