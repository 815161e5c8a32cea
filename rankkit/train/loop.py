"""The training loop every trainer shares: gradient accumulation, warm-up + linear decay,
clipping, mixed precision on CUDA, checkpoints with exact resume, dev evaluation, JSONL log."""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Iterator, Protocol

import torch
from tqdm.auto import tqdm

from rankkit.data.files import atomic_dir, atomic_write
from rankkit.errors import RankkitError
from rankkit.train.config import TrainConfig
from rankkit.train.examples import Group

LOG_FILE = "train_log.jsonl"
CHECKPOINTS = "checkpoints"


class Task(Protocol):
    """What a trainer gives the loop: the module to optimise, its loss on a batch, a saver."""

    module: torch.nn.Module
    device: torch.device

    def loss(self, batch: list[Group]) -> torch.Tensor: ...

    def save(self, folder: Path) -> None: ...


def warmup_linear_decay(total_steps: int, warmup_ratio: float) -> Callable[[int], float]:
    """Learning-rate multiplier: linear warm-up from 0 to 1, then linear decay to 0 at total_steps."""
    warmup = int(total_steps * warmup_ratio)

    def multiplier(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return multiplier


def _autocast(task: Task, enabled: bool) -> contextlib.AbstractContextManager:
    if enabled and task.device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


def _latest_checkpoint(output: Path) -> Path | None:
    found = sorted((output / CHECKPOINTS).glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
    return found[-1] if found else None


def _save_checkpoint(output: Path, step: int, task: Task, optimizer, scheduler, scaler) -> None:
    with atomic_dir(output / CHECKPOINTS / f"step-{step}", overwrite=True) as folder:
        torch.save({"step": step, "module": task.module.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
                   folder / "state.pt")
    for old in (output / CHECKPOINTS).glob("step-*"):  # keep only the newest
        if old.name != f"step-{step}":
            shutil.rmtree(old, ignore_errors=True)


def _resume(output: Path, task: Task, optimizer, scheduler, scaler) -> int:
    checkpoint = _latest_checkpoint(output)
    if checkpoint is None:
        return 0
    state = torch.load(checkpoint / "state.pt", map_location=task.device, weights_only=False)
    task.module.load_state_dict(state["module"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"]:
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    log = output / LOG_FILE
    if log.exists():  # forget what was logged after the checkpoint: it will be redone
        kept = [line for line in log.read_text().splitlines() if json.loads(line)["step"] <= state["step"]]
        with atomic_write(log) as out:
            out.writelines(line + "\n" for line in kept)
    return int(state["step"])


def fit(task: Task, epoch_batches: Callable[[int], list[list[Group]]], config: TrainConfig,
        evaluate: Callable[[], dict[str, float]] | None = None) -> Path:
    """Train until config.max_steps (or config.epochs), resuming from the newest checkpoint in
    config.output; returns the folder of the final model (config.output/model)."""
    output = Path(config.output)
    if config.overwrite:
        shutil.rmtree(output, ignore_errors=True)
    if (output / "model").exists() and _latest_checkpoint(output) is None:
        raise RankkitError(f"{output} already holds a trained model. Fix: pass another --output, or --overwrite")
    output.mkdir(parents=True, exist_ok=True)
    per_epoch = len(epoch_batches(0))
    if per_epoch == 0:
        raise RankkitError("no training groups: every query of the MinedSet lacks negatives. "
                           "Fix: mine with a wider window or fewer filters")
    total_steps = config.max_steps or math.ceil(config.epochs * per_epoch / config.grad_accum)
    torch.manual_seed(config.seed)
    decay = [p for n, p in task.module.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in task.module.named_parameters() if p.ndim <= 1]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=config.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_linear_decay(total_steps, config.warmup_ratio))
    use_scaler = config.amp and task.device.type == "cuda" and not torch.cuda.is_bf16_supported()
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
    step = _resume(output, task, optimizer, scheduler, scaler)
    with atomic_write(output / "config.json") as out:
        json.dump(asdict(config), out, indent=2)

    def micro_batches(start: int) -> Iterator[list[Group]]:
        index = start
        while True:
            epoch, offset = divmod(index, per_epoch)
            for batch in epoch_batches(epoch)[offset:]:
                yield batch
            index = (epoch + 1) * per_epoch

    stream = micro_batches(step * config.grad_accum)
    task.module.train()
    progress = tqdm(total=total_steps, initial=step, desc="training", unit="step")
    log = open(output / LOG_FILE, "a", encoding="utf-8")
    try:
        while step < total_steps:
            started, loss_sum, groups = time.perf_counter(), 0.0, 0
            for _ in range(config.grad_accum):
                batch = next(stream)
                with _autocast(task, config.amp):
                    loss = task.loss(batch) / config.grad_accum
                scaler.scale(loss).backward()
                loss_sum += float(loss.detach())
                groups += len(batch)
            scaler.unscale_(optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(task.module.parameters(), config.max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            lr = scheduler.get_last_lr()[0]
            scheduler.step()
            step += 1
            seconds = time.perf_counter() - started
            record = {"step": step, "loss": loss_sum, "lr": lr, "grad_norm": float(grad_norm),
                      "groups_per_s": groups / seconds}
            if evaluate is not None and ((config.eval_every and step % config.eval_every == 0) or step == total_steps):
                task.module.eval()
                record["dev"] = evaluate()
                task.module.train()
            log.write(json.dumps(record) + "\n")
            log.flush()
            progress.update(1)
            progress.set_postfix(loss=f"{loss_sum:.4f}")
            if config.checkpoint_every and step % config.checkpoint_every == 0 and step < total_steps:
                _save_checkpoint(output, step, task, optimizer, scheduler, scaler)
    except KeyboardInterrupt:
        _save_checkpoint(output, step, task, optimizer, scheduler, scaler)
        raise RankkitError(f"training interrupted at step {step}; a checkpoint was saved. "
                           "Fix: run the same command again to resume") from None
    finally:
        log.close()
        progress.close()
    task.module.eval()
    with atomic_dir(output / "model", overwrite=True) as folder:
        task.save(folder)
    shutil.rmtree(output / CHECKPOINTS, ignore_errors=True)
    if config.plot:
        from rankkit.train.plot import plot_training_log

        plot_training_log(output / LOG_FILE, output / "training_curves.png")
    return output / "model"
