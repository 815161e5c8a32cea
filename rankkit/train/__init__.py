"""Trainers for bi-encoders and cross-encoder rerankers (and CET), their losses and loop."""

from rankkit.lazy import lazy_attributes
from rankkit.train.config import TrainConfig

__getattr__ = lazy_attributes(
    __name__,
    {
        "DevSet": "rankkit.train.dev",
        "train_biencoder": "rankkit.train.biencoder",
        "train_reranker": "rankkit.train.reranker",
    },
)
__all__ = ["DevSet", "TrainConfig", "train_biencoder", "train_reranker"]
