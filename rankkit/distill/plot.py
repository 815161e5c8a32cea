"""The discriminator's weights over training (from train_log.jsonl) as a PNG: the mean weight of
self-adversarial and of hard negatives, and the discriminator's accuracy, per step."""

from __future__ import annotations

import json
from pathlib import Path

SERIES = (("weight_self_adversarial", "self-adversarial negatives"), ("weight_hard", "hard negatives"))


def plot_discriminator_weights(log: str | Path, png: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(line) for line in Path(log).read_text().splitlines() if line.strip()]
    figure, (weights, accuracy) = plt.subplots(1, 2, figsize=(10, 3.5))
    for key, label in SERIES:
        points = [(r["step"], r[key]) for r in records if key in r]
        if points:
            weights.plot(*zip(*points), label=label)
    weights.set(title="mean discriminator weight", xlabel="step")
    weights.legend()
    points = [(r["step"], r["discriminator_accuracy"]) for r in records if "discriminator_accuracy" in r]
    if points:
        accuracy.plot(*zip(*points))
    accuracy.set(title="discriminator accuracy", xlabel="step", ylim=(0, 1))
    figure.tight_layout()
    figure.savefig(png, dpi=100)
    plt.close(figure)
