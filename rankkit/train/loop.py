"""The training loop every trainer shares: gradient accumulation, warm-up + linear decay,
clipping, mixed precision on CUDA, checkpoints with exact resume, dev evaluation, JSONL log.

A task trains one or more parts (CET trains two models at once), each with its own optimizer,
schedule and clipping; the parts' losses are summed for one backward pass, so a part's loss may
use another part's scores only detached."""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import signal
import threading
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
    """What a trainer gives the loop: the parts to optimise (name -> module) with their learning
    rates, the loss of each part on a batch, and a saver."""

    parts: dict[str, torch.nn.Module]
    learning_rates: dict[str, float]
    device: torch.device

    def loss(self, batch: list[Group]) -> dict[str, torch.Tensor]: ...

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


def _adamw(module: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW without weight decay on biases and norms (parameters with one dimension)."""
    decay = [p for p in module.parameters() if p.ndim > 1]
    no_decay = [p for p in module.parameters() if p.ndim <= 1]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr)


def _first(task: Task) -> str:
    return next(iter(task.parts))


def _set_mode(task: Task, train: bool) -> None:
    for part in task.parts.values():
        part.train(train)


def _latest_checkpoint(output: Path) -> Path | None:
    found = sorted((output / CHECKPOINTS).glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
    return found[-1] if found else None


def _rng_state() -> dict:
    return {"torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def _save_checkpoint(output: Path, step: int, task: Task, optimizers: dict, schedulers: dict, scaler,
                     rng: dict | None = None) -> None:
    """rng: the random state as it was when `step` ended (default: now)."""
    with atomic_dir(output / CHECKPOINTS / f"step-{step}", overwrite=True) as folder:
        torch.save({"step": step, "parts": {name: part.state_dict() for name, part in task.parts.items()},
                    "optimizers": {name: o.state_dict() for name, o in optimizers.items()},
                    "schedulers": {name: s.state_dict() for name, s in schedulers.items()},
                    "scaler": scaler.state_dict(), **(rng or _rng_state())},
                   folder / "state.pt")
    for old in (output / CHECKPOINTS).glob("step-*"):  # keep only the newest
        if old.name != f"step-{step}":
            shutil.rmtree(old, ignore_errors=True)


def _resume(output: Path, task: Task, optimizers: dict, schedulers: dict, scaler) -> int:
    checkpoint = _latest_checkpoint(output)
    if checkpoint is None:
        return 0
    state = torch.load(checkpoint / "state.pt", map_location=task.device, weights_only=False)
    for name, part in task.parts.items():
        part.load_state_dict(state["parts"][name])
        optimizers[name].load_state_dict(state["optimizers"][name])
        schedulers[name].load_state_dict(state["schedulers"][name])
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


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM until the block ends, then deliver them.

    Between the optimizer steps and the step counter, an interrupt would checkpoint weights one
    step ahead of the count and the resumed run would apply that step twice. Signal handlers can
    only be set in the main thread; elsewhere the block runs unguarded."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {signum: signal.signal(signum, lambda signum, frame: held.append(signum))
                for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in held[:1]:
            signal.raise_signal(signum)


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
    optimizers = {name: _adamw(part, task.learning_rates[name], config.weight_decay)
                  for name, part in task.parts.items()}
    schedulers = {name: torch.optim.lr_scheduler.LambdaLR(o, warmup_linear_decay(total_steps, config.warmup_ratio))
                  for name, o in optimizers.items()}
    use_scaler = config.amp and task.device.type == "cuda" and not torch.cuda.is_bf16_supported()
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
    step = _resume(output, task, optimizers, schedulers, scaler)
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
    _set_mode(task, train=True)
    progress = tqdm(total=total_steps, initial=step, desc="training", unit="step")
    log = open(output / LOG_FILE, "a", encoding="utf-8")
    # the random state when the last whole step ended: a Ctrl-C mid-step (after the dropout of a
    # partial step drew from it) must checkpoint this one, or the resumed run would not be exact
    rng_at_step = _rng_state()
    unlogged: dict | None = None  # a finished step's record not yet in the log (Ctrl-C during its dev evaluation)
    try:
        while step < total_steps:
            started, groups = time.perf_counter(), 0
            part_losses = dict.fromkeys(task.parts, 0.0)
            for _ in range(config.grad_accum):
                batch = next(stream)
                with _autocast(task, config.amp):
                    losses = task.loss(batch)
                scaler.scale(sum(losses.values()) / config.grad_accum).backward()
                for name, loss in losses.items():
                    part_losses[name] += float(loss.detach()) / config.grad_accum
                groups += len(batch)
            record = {"step": step + 1, "loss": sum(part_losses.values()), "lr": schedulers[_first(task)].get_last_lr()[0]}
            with _interrupts_held():  # weights, schedules and step count change together
                for name, optimizer in optimizers.items():
                    scaler.unscale_(optimizer)
                    norm = torch.nn.utils.clip_grad_norm_(task.parts[name].parameters(), config.max_grad_norm)
                    record["grad_norm" if len(task.parts) == 1 else f"grad_norm_{name}"] = float(norm)
                    scaler.step(optimizer)
                    optimizer.zero_grad(set_to_none=True)
                    schedulers[name].step()
                scaler.update()
                if len(task.parts) > 1:
                    record.update({f"loss_{name}": value for name, value in part_losses.items()})
                step += 1
                rng_at_step, unlogged = _rng_state(), record
            record["groups_per_s"] = groups / (time.perf_counter() - started)
            record.update(getattr(task, "log_record", dict)())  # a task's own diagnostics (distillation)
            if evaluate is not None and ((config.eval_every and step % config.eval_every == 0) or step == total_steps):
                _set_mode(task, train=False)
                record["dev"] = evaluate()
                _set_mode(task, train=True)
            log.write(json.dumps(record) + "\n")
            log.flush()
            unlogged = None
            progress.update(1)
            progress.set_postfix(loss=f"{record['loss']:.4f}")
            if config.checkpoint_every and step % config.checkpoint_every == 0 and step < total_steps:
                _save_checkpoint(output, step, task, optimizers, schedulers, scaler)
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C; SIGTERM, which the CLI turns into SystemExit
        if unlogged is not None:
            log.write(json.dumps(unlogged) + "\n")
        _save_checkpoint(output, step, task, optimizers, schedulers, scaler, rng_at_step)
        raise RankkitError(f"training interrupted at step {step}; a checkpoint was saved. "
                           "Fix: run the same command again to resume") from None
    finally:
        log.close()
        progress.close()
    _set_mode(task, train=False)
    with atomic_dir(output / "model", overwrite=True) as folder:
        task.save(folder)
    shutil.rmtree(output / CHECKPOINTS, ignore_errors=True)
    if config.plot:
        from rankkit.train.plot import plot_training_log

        plot_training_log(output / LOG_FILE, output / "training_curves.png")
    return output / "model"
