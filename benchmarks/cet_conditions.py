"""The training shared by the CET benchmarks (scifact_cet.py, pooling_bias.py): a naive or denoised
condition's ranker, or CET's relevance model, all with the same pairwise softmax loss, as bi-encoders
or as cross-encoders (CET's selection model then a second cross-encoder, as in its reference)."""

from __future__ import annotations

from pathlib import Path

from rankkit.mining import MinedSet
from rankkit.train.biencoder import train_biencoder
from rankkit.train.cet import train_cet
from rankkit.train.config import CETConfig, RerankerConfig, TrainConfig
from rankkit.train.reranker import train_reranker


def train_condition(
    mined: MinedSet,
    doc_texts: dict[str, str],
    config: TrainConfig,
    *,
    ranker: str,
    cet: bool,
    debias_ratio: float,
    selection_lr: float,
    head_lr: float | None,
    temperature: float = 0.05,
) -> Path:
    """The trained ranker's folder (CET: its relevance model). Bi-encoders: CET's selection model is
    the provenance MLP at `selection_lr`; cross-encoders: a cross-encoder at config.lr, both heads at
    `head_lr`."""
    cross = ranker == "cross-encoder"
    if cet:
        settings = CETConfig(
            relevance=ranker,  # type: ignore[arg-type]
            selection="cross-encoder" if cross else "provenance",
            debias_ratio=debias_ratio,
            selection_lr=None if cross else selection_lr,
            temperature=temperature,
            head_lr=head_lr if cross else None,
        )
        return train_cet(mined, doc_texts, config, settings) / "relevance"
    if cross:
        return train_reranker(mined, doc_texts, config, RerankerConfig(loss="pairwise", head_lr=head_lr))
    return train_biencoder(mined, doc_texts, config, temperature=temperature, loss="pairwise")
