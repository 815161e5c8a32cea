"""Training curves (loss, learning rate, dev measures) from train_log.jsonl as a PNG."""

from __future__ import annotations

import json
from pathlib import Path


def plot_training_log(log: str | Path, png: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(line) for line in Path(log).read_text().splitlines() if line.strip()]
    dev = [r for r in records if "dev" in r]
    panels = 3 if dev else 2
    figure, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.5))
    steps = [r["step"] for r in records]
    axes[0].plot(steps, [r["loss"] for r in records])
    axes[0].set(title="training loss", xlabel="step")
    axes[1].plot(steps, [r["lr"] for r in records])
    axes[1].set(title="learning rate", xlabel="step")
    if dev:
        for measure in dev[0]["dev"]:
            axes[2].plot([r["step"] for r in dev], [r["dev"][measure] for r in dev], marker="o", label=measure)
        axes[2].set(title="dev", xlabel="step")
        axes[2].legend()
    figure.tight_layout()
    figure.savefig(png, dpi=100)
    plt.close(figure)
