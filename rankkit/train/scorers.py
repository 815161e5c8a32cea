"""Group scorers: models that score each training group's positive and negatives, [B, 1 + n].

The reranker, bi-encoder and CET trainers share them; CET pairs two of them (relevance and
selection)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
import torch

from rankkit.encode.biencoder import BiEncoder
from rankkit.encode.crossencoder import CrossEncoder
from rankkit.train.examples import Group


class GroupScorer(Protocol):
    kind: str
    module: torch.nn.Module
    device: torch.device

    def group_scores(self, batch: list[Group]) -> torch.Tensor: ...

    def score_documents(
        self, qid: str, queries: Sequence[str], docids: Sequence[str], passages: Sequence[str]
    ) -> np.ndarray: ...

    def save(self, folder: Path) -> None: ...


class CrossEncoderScorer:
    kind = "cross-encoder"

    def __init__(self, model: CrossEncoder):
        self.model, self.module, self.device = model, model.model, model.device

    def head_rates(self, rate: float) -> dict[str, float]:
        """A learning rate for each parameter of the scoring head: those beyond the encoder."""
        encoder = f"{self.module.base_model_prefix}."
        return {name: rate for name, _ in self.module.named_parameters() if not name.startswith(encoder)}

    def group_scores(self, batch: list[Group]) -> torch.Tensor:
        """Each group's positive in column 0, then its negatives."""
        width = 1 + len(batch[0].negatives)
        queries = [g.query for g in batch for _ in range(width)]
        passages = [text for g in batch for text in (g.positive, *g.negatives)]
        return self.model.logits(queries, passages).view(len(batch), width)

    def score_texts(self, queries: Sequence[str], passages: Sequence[str]) -> np.ndarray:
        return self.model.score(list(zip(queries, passages)))

    def score_documents(
        self, qid: str, queries: Sequence[str], docids: Sequence[str], passages: Sequence[str]
    ) -> np.ndarray:
        return self.score_texts(queries, passages)

    def save(self, folder: Path) -> None:
        self.model.save(folder)


class BiEncoderScorer:
    """Dot products of normalised embeddings divided by a temperature (as in InfoNCE)."""

    kind = "bi-encoder"

    def __init__(self, encoder: BiEncoder, temperature: float = 0.05):
        self.encoder, self.temperature = encoder, temperature
        self.module, self.device = encoder.stack, encoder.device  # the transformer and any Dense layers

    def group_scores(self, batch: list[Group]) -> torch.Tensor:
        width = 1 + len(batch[0].negatives)
        queries = self.encoder.embed([g.query for g in batch], role="query")
        documents = self.encoder.embed([t for g in batch for t in (g.positive, *g.negatives)])
        documents = documents.view(len(batch), width, -1)
        return (queries.unsqueeze(1) * documents).sum(-1) / self.temperature

    def score_texts(self, queries: Sequence[str], passages: Sequence[str]) -> np.ndarray:
        return (self.encoder.encode(queries, role="query") * self.encoder.encode(passages)).sum(
            axis=1
        ) / self.temperature

    def score_documents(
        self, qid: str, queries: Sequence[str], docids: Sequence[str], passages: Sequence[str]
    ) -> np.ndarray:
        return self.score_texts(queries, passages)

    def save(self, folder: Path) -> None:
        self.encoder.save(folder)
