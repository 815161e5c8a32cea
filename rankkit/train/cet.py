"""CET: train a relevance model and a selection model together on the same (positive, negative)
pairs, each pair's loss for one model weighted by the other model's detached score of the
negative (see rankkit/train/losses/cet.py), and estimate which mined negatives are false ones.

Relevance: a cross-encoder or a bi-encoder (the ranker users keep, saved to model/relevance).
Selection: a cross-encoder as in the paper, or the light provenance model (model/selection).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from rankkit.encode.biencoder import BiEncoder
from rankkit.encode.crossencoder import CrossEncoder
from rankkit.encode.device import choose_device, launcher_device
from rankkit.errors import RankkitError
from rankkit.mining.minedset import MinedSet
from rankkit.train import distributed
from rankkit.train.config import CETConfig, TrainConfig
from rankkit.train.dev import DevSet
from rankkit.train.examples import Group, batches, check_mined, epoch_groups
from rankkit.train.loop import fit
from rankkit.train.losses import cet_pair_weights, weighted_pairwise_softmax_loss
from rankkit.train.scorers import BiEncoderScorer, CrossEncoderScorer, GroupScorer
from rankkit.train.selection import ProvenanceFeatures, ProvenanceScorer

CET_FILE = "cet.json"


class CETTask:
    def __init__(
        self,
        relevance: GroupScorer,
        selection: GroupScorer,
        debias_ratio: float,
        relevance_lr: float,
        selection_lr: float,
        head_lr: float | None = None,
    ):
        """head_lr: the learning rate of each cross-encoder's scoring head (default: its model's rate)."""
        if debias_ratio <= 0:
            raise RankkitError(f"CET debias ratio T={debias_ratio} must be positive. Fix: pass e.g. --debias-ratio 2")
        self.relevance, self.selection, self.debias_ratio = relevance, selection, debias_ratio
        self.parts = {"relevance": relevance.module, "selection": selection.module}
        self.learning_rates = {"relevance": relevance_lr, "selection": selection_lr}
        self.parameter_rates = {
            name: scorer.head_rates(head_lr)
            for name, scorer in (("relevance", relevance), ("selection", selection))
            if head_lr and isinstance(scorer, CrossEncoderScorer)
        }
        self.device = relevance.device

    def loss(self, batch: list[Group]) -> dict[str, torch.Tensor]:
        relevance = self.relevance.group_scores(batch)
        selection = self.selection.group_scores(batch).to(relevance.device)
        return {
            "relevance": weighted_pairwise_softmax_loss(
                relevance[:, 0], relevance[:, 1:], cet_pair_weights(selection[:, 1:], self.debias_ratio)
            ),
            "selection": weighted_pairwise_softmax_loss(
                selection[:, 0], selection[:, 1:], cet_pair_weights(relevance[:, 1:], self.debias_ratio)
            ),
        }

    def save(self, folder: Path) -> None:
        self.relevance.save(folder / "relevance")
        self.selection.save(folder / "selection")
        (folder / CET_FILE).write_text(
            json.dumps(
                {
                    "relevance": self.relevance.kind,
                    "selection": self.selection.kind,
                    "debias_ratio": self.debias_ratio,
                    "temperature": getattr(self.relevance, "temperature", None),
                }
            )
        )


def _relevance_scorer(config: TrainConfig, cet: CETConfig, model: str) -> GroupScorer:
    device = launcher_device(config.device)
    if cet.relevance == "cross-encoder":
        return CrossEncoderScorer(CrossEncoder(model, device=device, max_length=config.max_length))
    if cet.relevance == "bi-encoder":
        return BiEncoderScorer(BiEncoder(model, device=device, max_length=config.max_length), cet.temperature)
    raise RankkitError(f"unknown relevance model {cet.relevance!r}. Fix: use cross-encoder or bi-encoder")


def _selection_scorer(config: TrainConfig, cet: CETConfig, mined: MinedSet, model: str | None) -> GroupScorer:
    if cet.selection == "provenance":  # on the CPU, but with the relevance model under torchrun: NCCL needs a GPU
        device = launcher_device(config.device) if distributed.launched() else "cpu"
        return ProvenanceScorer(ProvenanceFeatures(mined), device=choose_device(device))
    if cet.selection == "cross-encoder":
        return CrossEncoderScorer(
            CrossEncoder(model or config.model, device=launcher_device(config.device), max_length=config.max_length)
        )
    raise RankkitError(f"unknown selection model {cet.selection!r}. Fix: use provenance or cross-encoder")


def train_cet(
    mined: MinedSet,
    doc_texts: Mapping[str, str],
    config: TrainConfig,
    cet: CETConfig = CETConfig(),
    dev: DevSet | None = None,
) -> Path:
    """Train both models; returns the model folder (relevance/, selection/, cet.json)."""
    check_mined(mined, doc_texts, config.negatives)
    torch.manual_seed(config.seed)  # the provenance model's initial weights
    relevance = _relevance_scorer(config, cet, config.model)
    selection = _selection_scorer(config, cet, mined, cet.selection_model)
    selection_lr = cet.selection_lr or (1e-3 if cet.selection == "provenance" else config.lr)
    task = CETTask(relevance, selection, cet.debias_ratio, config.lr, selection_lr, cet.head_lr)
    evaluate = dev.evaluator(relevance.score_texts) if dev else None  # type: ignore[attr-defined]
    return fit(
        task,
        lambda epoch: batches(epoch_groups(mined, doc_texts, config.negatives, config.seed, epoch), config.batch_size),
        config,
        evaluate,
        options={"trainer": "cet", **asdict(cet)},
    )


def false_negative_probability(relevance: np.ndarray, selection: np.ndarray, temperature: float) -> np.ndarray:
    """P(relevant | unlabeled) = P(r)(1 - P(s)) / (1 - P(r) P(s)), with P(r) = sigmoid(s_rel / T)
    and P(s) = sigmoid(s_sel / T), the same mapping as CET's weights; r and s taken independent."""
    p_r = 1.0 / (1.0 + np.exp(-relevance / temperature))
    p_s = 1.0 / (1.0 + np.exp(-selection / temperature))
    return p_r * (1.0 - p_s) / np.maximum(1.0 - p_r * p_s, 1e-12)
