"""Training losses, one per file: pure functions of tensors."""

from rankkit.train.losses.cet import cet_pair_weights, weighted_pairwise_softmax_loss
from rankkit.train.losses.info_nce import info_nce_loss
from rankkit.train.losses.listwise_kl import listwise_kl_loss
from rankkit.train.losses.margin_mse import margin_mse_loss
from rankkit.train.losses.pointwise_bce import pointwise_bce_loss
from rankkit.train.losses.softmax_cross_entropy import softmax_cross_entropy_loss
from rankkit.train.losses.supervised_contrastive import supervised_contrastive_loss
from rankkit.train.losses.weighted_contrastive import weighted_contrastive_loss

__all__ = [
    "cet_pair_weights",
    "info_nce_loss",
    "listwise_kl_loss",
    "margin_mse_loss",
    "pointwise_bce_loss",
    "softmax_cross_entropy_loss",
    "supervised_contrastive_loss",
    "weighted_contrastive_loss",
    "weighted_pairwise_softmax_loss",
]
