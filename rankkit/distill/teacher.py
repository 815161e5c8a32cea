"""Teachers: anything that scores each query's candidate documents. A bi-encoder encodes every
candidate document once and scores by dot product; a cross-encoder scores (query, passage) pairs;
a TREC run (another system's output) gives its own scores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Mapping, Protocol, Sequence

import numpy as np

from rankkit.data.runs import Run, read_run
from rankkit.encode.models import resolve_model_dir
from rankkit.errors import RankkitError
from rankkit.options import TORCH_INFERENCE, Inference

if TYPE_CHECKING:
    from rankkit.encode.biencoder import BiEncoder

ModelKind = Literal["bi-encoder", "cross-encoder"]
CandidateIds = Mapping[str, Sequence[str]]  # qid -> docids


class Teacher(Protocol):
    name: str

    def score(
        self, queries: Mapping[str, str], candidates: CandidateIds, doc_texts: Mapping[str, str]
    ) -> dict[str, np.ndarray]: ...


def model_kind(name: str | Path) -> ModelKind:
    """'cross-encoder' for a folder whose config names a sequence-classification head (what
    `rankkit train reranker` and CET's relevance model save), else 'bi-encoder'."""
    config = json.loads((resolve_model_dir(name) / "config.json").read_text())
    heads = [a for a in config.get("architectures") or [] if a.endswith("ForSequenceClassification")]
    return "cross-encoder" if heads else "bi-encoder"


def dot_product_scores(
    encoder: "BiEncoder",
    queries: Mapping[str, str],
    candidates: CandidateIds,
    doc_texts: Mapping[str, str],
    scale: float = 1.0,
    progress: str | None = None,
    cache: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """scale * (query . document) for each query's candidates, every document encoded once
    (`progress`: show a progress bar with this label). `cache` holds this encoder's document
    vectors by docid: documents in it are not encoded again, and the new ones are added to it."""
    cache = {} if cache is None else cache
    missing = sorted({d for found in candidates.values() for d in found} - cache.keys())
    if missing:
        vectors = encoder.encode(
            [doc_texts[d] for d in missing], show_progress=progress is not None, desc=f"{progress}: documents"
        )
        cache.update(zip(missing, vectors))
    qids = list(candidates)
    query_vectors = encoder.encode([queries[q] for q in qids], role="query")
    return {
        qid: scale
        * (
            np.array([cache[d] for d in candidates[qid]], dtype=np.float32).reshape(-1, encoder.dimension)
            @ query_vectors[i]
        )
        for i, qid in enumerate(qids)
    }


class BiEncoderTeacher:
    """Dot products of the teacher's embeddings (cosines for normalised models) times `scale`."""

    def __init__(
        self,
        model: str,
        device: str | None = None,
        scale: float = 1.0,
        precision: str = "fp32",
        inference: Inference = TORCH_INFERENCE,
    ):
        from rankkit.encode.biencoder import BiEncoder

        self.encoder = BiEncoder(model, device=device, precision=precision, inference=inference)
        self.name, self.scale = self.encoder.name, scale

    def score(
        self, queries: Mapping[str, str], candidates: CandidateIds, doc_texts: Mapping[str, str]
    ) -> dict[str, np.ndarray]:
        return dot_product_scores(self.encoder, queries, candidates, doc_texts, self.scale, "teacher")


class CrossEncoderTeacher:
    def __init__(
        self,
        model: str,
        device: str | None = None,
        scale: float = 1.0,
        precision: str = "fp32",
        inference: Inference = TORCH_INFERENCE,
    ):
        from rankkit.encode.crossencoder import CrossEncoder

        self.model = CrossEncoder(model, device=device, precision=precision, inference=inference)
        self.name, self.scale = self.model.name, scale

    def score(
        self, queries: Mapping[str, str], candidates: CandidateIds, doc_texts: Mapping[str, str]
    ) -> dict[str, np.ndarray]:
        owners = [(qid, len(found)) for qid, found in candidates.items()]
        pairs = [(queries[qid], doc_texts[d]) for qid, found in candidates.items() for d in found]
        flat = self.scale * self.model.score(pairs, show_progress=True)
        scores, start = {}, 0
        for qid, count in owners:
            scores[qid] = flat[start : start + count]
            start += count
        return scores


class RunTeacher:
    """Scores from another system's TREC run; it can only score documents it retrieved."""

    def __init__(self, path: str | Path, scale: float = 1.0):
        self.run: Run = read_run(path)
        self.name, self.scale = Path(path).name, scale

    def score(
        self, queries: Mapping[str, str], candidates: CandidateIds, doc_texts: Mapping[str, str]
    ) -> dict[str, np.ndarray]:
        scores = {}
        for qid, found in candidates.items():
            known = {h.docid: h.score for h in self.run.get(qid, [])}
            missing = [d for d in found if d not in known]
            if missing:
                raise RankkitError(
                    f"teacher run {self.name} has no score for document {missing[0]!r} of query "
                    f"{qid!r}. Fix: take the candidates from the teacher run itself (no --candidates "
                    "or --index), or use a model as the teacher"
                )
            scores[qid] = self.scale * np.array([known[d] for d in found], dtype=np.float64)
        return scores


def open_teacher(
    spec: str,
    device: str | None = None,
    scale: float | None = None,
    bi_encoder_scale: float = 20.0,
    precision: str = "fp32",
    inference: Inference = TORCH_INFERENCE,
) -> Teacher:
    """A TREC run file, or a model (folder, packaged name or hub id) of either kind, run on
    `inference`'s backend.

    A bi-encoder's cosines are multiplied by `bi_encoder_scale` (the student's 1 / temperature)
    unless `scale` is given, so teacher and student scores live on one scale."""
    if Path(spec).is_file():
        return RunTeacher(spec, scale if scale is not None else 1.0)
    if model_kind(spec) == "cross-encoder":
        return CrossEncoderTeacher(spec, device, scale if scale is not None else 1.0, precision, inference)
    return BiEncoderTeacher(spec, device, scale if scale is not None else bi_encoder_scale, precision, inference)
