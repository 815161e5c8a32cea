"""Per-example loss history and the down-weighting of suspected bad examples, after "Dynamic Bad
Pair Mining" (DBPM; Lan, Yan, Hong, Ng and Feng, "Towards Enhancing Time Series Contrastive
Learning: A Dynamic Bad Pair Mining Approach", ICLR 2024).

DBPM keeps a memory of every training pair's loss over the epochs and flags pairs whose mean
historical loss is an outlier (above mean + k std over all pairs) as bad: noisy ones, whose loss
stays high because their label or view is wrong. Here a pair is tied to a review, so the history
is kept per review (its classification loss each epoch): a review whose loss stays far above the
others' is likely mislabelled, and its weight, and so that of every contrastive pair it belongs
to, is lowered to `weight`. A review is judged only once it has `warmup` epochs of history.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np


@dataclass
class LossHistory:
    """Losses of each example (by index) per epoch; `weights` flags the outliers."""

    size: int
    k: float = 2.0  # an example is flagged when its mean loss > mean + k * std of all examples' means
    weight: float = 0.1  # the weight of a flagged example (others keep 1)
    warmup: int = 1  # epochs of history before anyone is flagged
    losses: dict[int, dict[int, float]] = field(default_factory=lambda: defaultdict(dict))  # epoch -> index -> loss

    def record(self, epoch: int, indices: list[int], losses: list[float]) -> None:
        for index, loss in zip(indices, losses):
            self.losses[epoch][index] = loss

    def mean_losses(self, before_epoch: int) -> np.ndarray:
        """Each example's mean loss over the epochs before `before_epoch` (NaN where never seen)."""
        total, seen = np.zeros(self.size), np.zeros(self.size)
        for epoch, values in self.losses.items():
            if epoch < before_epoch:
                for index, loss in values.items():
                    total[index] += loss
                    seen[index] += 1
        with np.errstate(invalid="ignore"):
            return total / seen

    def weights(self, epoch: int) -> np.ndarray:
        """The weight of every example for training epoch `epoch`, from the history before it."""
        weights = np.ones(self.size)
        if sum(1 for e in self.losses if e < epoch) < self.warmup:
            return weights
        means = self.mean_losses(epoch)
        known = ~np.isnan(means)
        if known.sum() < 2:
            return weights
        limit = means[known].mean() + self.k * means[known].std()
        weights[known & (means > limit)] = self.weight
        return weights
