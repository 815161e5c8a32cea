"""Training configuration shared by the trainers (written beside the trained model)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainConfig:
    output: str  # folder: model/, checkpoints/, train_log.jsonl, config.json
    model: str = "default"  # starting checkpoint: folder or hub id
    epochs: int = 1
    max_steps: int | None = None  # stop after this many optimizer steps (overrides epochs)
    batch_size: int = 8  # queries per micro-batch (of all processes together under torchrun)
    grad_accum: int = 1  # micro-batches per optimizer step
    negatives: int = 4  # mined negatives per query
    lr: float = 2e-5
    warmup_ratio: float = 0.1  # share of steps with a linear warm-up, then linear decay to 0
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    seed: int = 0
    checkpoint_every: int = 0  # optimizer steps between checkpoints; 0 = only at the end
    eval_every: int = 0  # optimizer steps between dev evaluations; 0 = only at the end
    device: str | None = None
    precision: str = "auto"  # auto (mixed on CUDA, fp32 on CPU) | fp32 | bf16 (autocast), see rankkit.encode.precision
    max_length: int | None = None
    plot: bool = False  # write training_curves.png at the end
    overwrite: bool = False  # start afresh; the new output replaces config.output once training completes
