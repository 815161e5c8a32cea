"""Trainers for bi-encoders and cross-encoder rerankers (and CET), their losses and loop."""

from rankkit.train.biencoder import train_biencoder
from rankkit.train.config import TrainConfig
from rankkit.train.dev import DevSet
from rankkit.train.reranker import train_reranker

__all__ = ["DevSet", "TrainConfig", "train_biencoder", "train_reranker"]
