"""The training loop every trainer shares: gradient accumulation, warm-up + linear decay,
clipping, mixed precision on CUDA, checkpoints with exact resume, dev evaluation, JSONL log;
data-parallel under torchrun (see rankkit/train/distributed.py), rank 0 writing every file.

A task trains one or more parts (CET trains two models at once), each with its own optimizer,
schedule and clipping. Its loss is one or more named terms (CET: one per model; a reranker: labels
and teacher), summed for one backward pass and logged apart, so a term may use another part's
scores only detached."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Iterator, Protocol

import torch
from tqdm.auto import tqdm

from rankkit.data.files import atomic_dir, atomic_write, output_lock, removed_if_new_and_failed
from rankkit.encode.precision import training_autocast_dtype
from rankkit.errors import RankkitError
from rankkit.train import distributed
from rankkit.train.config import TrainConfig
from rankkit.train.examples import Group

LOG_FILE = "train_log.jsonl"
CHECKPOINTS = "checkpoints"
CONFIG_FILE = "config.json"
STATE_FILE = "state.pt"
# options that do not change the trained weights: a run may resume with other values of these
NOT_RESUME_OPTIONS = frozenset({"output", "overwrite", "plot", "eval_every", "checkpoint_every", "device"})


class Task(Protocol):
    """What a trainer gives the loop: the parts to optimise (name -> module) with their learning
    rates, the named loss terms of a batch, and a saver. A task may also give some parameters of a
    part their own rate (`parameter_rates`: part -> parameter name -> rate), e.g. a new head."""

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


def _autocast(task: Task, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(task.device.type, dtype=dtype)


def _adamw(
    module: torch.nn.Module, lr: float, weight_decay: float, own_rates: dict[str, float] | None = None
) -> torch.optim.AdamW:
    """AdamW without weight decay on biases and norms (parameters with one dimension); the
    parameters named in `own_rates` learn at their own rate, the rest at `lr`."""
    groups: dict[tuple[float, bool], list[torch.nn.Parameter]] = {}
    for name, parameter in module.named_parameters():
        rate = (own_rates or {}).get(name, lr)
        groups.setdefault((rate, parameter.ndim > 1), []).append(parameter)
    return torch.optim.AdamW(
        [
            {"params": params, "lr": rate, "weight_decay": weight_decay if decays else 0.0}
            for (rate, decays), params in groups.items()
        ],
        lr=lr,
    )


def _first(task: Task) -> str:
    return next(iter(task.parts))


def _set_mode(task: Task, train: bool) -> None:
    for part in task.parts.values():
        part.train(train)


def _latest_checkpoint(output: Path) -> Path | None:
    found = sorted((output / CHECKPOINTS).glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
    return found[-1] if found else None


def _rng_state() -> dict:
    return {
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def resume_options(config: TrainConfig, task_options: dict | None = None) -> dict:
    """The options a checkpoint must share with the run that resumes it (JSON values)."""
    options = {k: v for k, v in asdict(config).items() if k not in NOT_RESUME_OPTIONS}
    return json.loads(json.dumps({**options, **(task_options or {})}))


TRAINING_OUTPUT = "a rankkit training output (config.json)"


def is_training_output(folder: Path) -> bool:
    """Whether `folder` is what `fit` writes (its config.json holds a TrainConfig): what
    --overwrite may replace."""
    try:
        config = json.loads((folder / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and {"output", "grad_accum", "negatives"} <= set(config)


def _save_checkpoint(
    output: Path,
    step: int,
    task: Task,
    optimizers: dict,
    schedulers: dict,
    scaler,
    options: dict,
    rng: dict | None = None,
) -> None:
    """rng: the random state as it was when `step` ended (default: now). Saved as tensors and
    plain values only, so that it loads with torch.load(weights_only=True)."""
    with atomic_dir(output / CHECKPOINTS / f"step-{step}", overwrite=True) as folder:
        torch.save(
            {
                "step": step,
                "options": options,
                "parts": {name: part.state_dict() for name, part in task.parts.items()},
                "optimizers": {name: o.state_dict() for name, o in optimizers.items()},
                "schedulers": {name: s.state_dict() for name, s in schedulers.items()},
                "scaler": scaler.state_dict(),
                **(rng or _rng_state()),
            },
            folder / STATE_FILE,
        )
    for old in (output / CHECKPOINTS).glob("step-*"):  # keep only the newest
        if old.name != f"step-{step}":
            shutil.rmtree(old, ignore_errors=True)


def _load_state(path: Path, device: torch.device) -> dict:
    fix = f"rerun with --overwrite to start afresh (or delete {path.parent} and rerun)"
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # truncated, garbage or unsafe pickles: torch raises many types
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise RankkitError(f"{path}: damaged checkpoint, it cannot be loaded ({reason}). Fix: {fix}") from None
    required = {"step", "options", "parts", "optimizers", "schedulers", "scaler"}
    if not isinstance(state, dict) or not required <= set(state):
        raise RankkitError(f"{path}: not a rankkit checkpoint. Fix: {fix}")
    return state


def _check_same_options(path: Path, saved: dict, options: dict) -> None:
    differ = sorted(k for k in {*saved, *options} if saved.get(k) != options.get(k))
    if differ:
        changes = ", ".join(f"{k}: {saved.get(k)!r} in the checkpoint, {options.get(k)!r} now" for k in differ)
        raise RankkitError(
            f"{path}: the checkpoint was written with other options ({changes}). Fix: rerun with the "
            "checkpoint's options to resume, or pass --overwrite to start afresh"
        )


def _resume(output: Path, task: Task, optimizers: dict, schedulers: dict, scaler, options: dict) -> int:
    """Load the newest checkpoint (every rank); rank 0 also cuts the log back to it."""
    checkpoint = _latest_checkpoint(output)
    log = output / LOG_FILE
    if checkpoint is None:
        if distributed.is_main():
            log.unlink(missing_ok=True)  # a fresh start: no earlier run's steps in the log
        return 0
    path = checkpoint / STATE_FILE
    state = _load_state(path, task.device)
    _check_same_options(path, state["options"], options)
    try:
        for name, part in task.parts.items():
            part.load_state_dict(state["parts"][name])
            optimizers[name].load_state_dict(state["optimizers"][name])
            schedulers[name].load_state_dict(state["schedulers"][name])
        scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"]:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise RankkitError(
            f"{path}: the checkpoint does not fit this model ({type(exc).__name__}: "
            f"{str(exc)[:200]}). Fix: rerun with --overwrite to start afresh"
        ) from None
    if distributed.is_main() and log.exists():  # forget what was logged after the checkpoint: it will be redone
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
    previous = {
        signum: signal.signal(signum, lambda signum, frame: held.append(signum))
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in held[:1]:
            signal.raise_signal(signum)


def fit(
    task: Task,
    epoch_batches: Callable[[int], list[list[Group]]],
    config: TrainConfig,
    evaluate: Callable[[], dict[str, float]] | None = None,
    options: dict | None = None,
    finish: Callable[[Path], None] | None = None,
    replaceable: Callable[[Path], bool] = is_training_output,
    what: str = TRAINING_OUTPUT,
) -> Path:
    """Train until config.max_steps (or config.epochs); returns the folder of the final model
    (config.output/model). `options` are the trainer's own settings (loss, temperature, ...):
    with the config, a checkpoint records them and refuses a resume with other values.
    `finish(folder)` writes a trainer's own files into the output once the model is saved.

    Without config.overwrite, the run resumes from the newest checkpoint in config.output (a
    folder of anything but `what`, as `replaceable` recognises it, is refused). With it, training
    runs in a temporary folder that replaces config.output only once complete (`finish` done), so
    a failed run keeps the old output; only a folder that `replaceable` recognises is replaced.

    The run holds config.output's lock (rankkit.data.files.output_lock) throughout, so a second
    run into the same output at the same time is refused. A run into a new or empty folder that
    fails before its first checkpoint removes what it wrote (config.json, the log, checkpoints/).

    Under torchrun (WORLD_SIZE > 1) each process trains on its share of every batch (see
    rankkit/train/distributed.py) and rank 0 alone writes; config.batch_size is the global batch,
    so a checkpoint resumes the same with any number of processes."""
    output = Path(config.output)
    options = resume_options(config, options)
    with (
        distributed.process_group(task.device),
        output_lock(output) if distributed.is_main() else contextlib.nullcontext(),
    ):
        if config.overwrite:
            with (
                atomic_dir(output, overwrite=True, replaceable=replaceable, what=what)
                if distributed.is_main()
                else contextlib.nullcontext()
            ) as work:
                _train(distributed.from_main(work), output, task, epoch_batches, config, evaluate, options, finish)
        else:
            _check_output(output, replaceable, what)
            distributed.barrier()  # every rank has looked at the folder before rank 0 writes into it
            with (
                removed_if_new_and_failed(output, keep=lambda folder: _latest_checkpoint(folder) is not None)
                if distributed.is_main()
                else contextlib.nullcontext()
            ):
                if distributed.is_main():
                    output.mkdir(parents=True, exist_ok=True)
                _train(output, output, task, epoch_batches, config, evaluate, options, finish)
        distributed.barrier()  # the model is in place before any rank returns
    return output / "model"


def _check_output(output: Path, replaceable: Callable[[Path], bool], what: str) -> None:
    """Training without --overwrite writes only into a new, empty or unfinished training output."""
    if output.exists() and (not output.is_dir() or (any(output.iterdir()) and not replaceable(output))):
        raise RankkitError(
            f"{output}: exists and is not {what}, so training will not write "
            "into it. Fix: pass another --output (a new or empty folder)"
        )
    if (output / "model").exists() and _latest_checkpoint(output) is None:
        raise RankkitError(f"{output} already holds a trained model. Fix: pass another --output, or --overwrite")


def _train(
    output: Path,
    final: Path,
    task: Task,
    epoch_batches: Callable[[int], list[list[Group]]],
    config: TrainConfig,
    evaluate: Callable[[], dict[str, float]] | None,
    options: dict,
    finish: Callable[[Path], None] | None = None,
) -> None:
    """Train in `output` (`final` itself, or the temporary folder that will become it)."""
    per_epoch = len(epoch_batches(0))
    if per_epoch == 0:
        raise RankkitError(
            "no training groups: every query of the MinedSet lacks negatives. "
            "Fix: mine with a wider window or fewer filters"
        )
    total_steps = config.max_steps or math.ceil(config.epochs * per_epoch / config.grad_accum)
    torch.manual_seed(config.seed)
    optimizers = {
        name: _adamw(
            part, task.learning_rates[name], config.weight_decay, getattr(task, "parameter_rates", {}).get(name)
        )
        for name, part in task.parts.items()
    }
    schedulers = {
        name: torch.optim.lr_scheduler.LambdaLR(o, warmup_linear_decay(total_steps, config.warmup_ratio))
        for name, o in optimizers.items()
    }
    autocast_dtype = training_autocast_dtype(config.precision, task.device)
    scaler = torch.amp.GradScaler("cuda", enabled=autocast_dtype == torch.float16)
    step = _resume(output, task, optimizers, schedulers, scaler, options)
    distributed.barrier()  # every rank has read the checkpoint before rank 0 may replace it
    main = distributed.is_main()
    if main:
        with atomic_write(output / CONFIG_FILE) as out:
            json.dump(asdict(config), out, indent=2)
    loss_of = distributed.data_parallel_loss(task.parts, task.loss, task.device)

    def micro_batches(start: int) -> Iterator[list[Group]]:
        index = start
        while True:
            epoch, offset = divmod(index, per_epoch)
            for batch in epoch_batches(epoch)[offset:]:
                yield batch
            index = (epoch + 1) * per_epoch

    stream = micro_batches(step * config.grad_accum)
    _set_mode(task, train=True)
    progress = tqdm(total=total_steps, initial=step, desc="training", unit="step", disable=not main)
    log = open(output / LOG_FILE if main else os.devnull, "a", encoding="utf-8")
    # the random state when the last whole step ended: a Ctrl-C mid-step (after the dropout of a
    # partial step drew from it) must checkpoint this one, or the resumed run would not be exact
    rng_at_step = _rng_state()
    unlogged: dict | None = None  # a finished step's record not yet in the log (Ctrl-C during its dev evaluation)
    try:
        while step < total_steps:
            started, groups = time.perf_counter(), 0
            terms: dict[str, float] = {}
            for _ in range(config.grad_accum):
                batch = next(stream)
                shard = distributed.shard_of_batch(batch)
                with _autocast(task, autocast_dtype):
                    losses = loss_of(shard)
                weight = distributed.weight_of_shard(shard, batch)  # 1 in one process
                scaler.scale(sum(losses.values()) * weight / config.grad_accum).backward()
                for name, loss in losses.items():
                    terms[name] = terms.get(name, 0.0) + float(loss.detach()) * weight / config.grad_accum
                groups += len(batch)
            terms = dict(zip(terms, distributed.mean_over_ranks(list(terms.values()), task.device)))
            record = {
                "step": step + 1,
                "loss": sum(terms.values()),
                "lr": schedulers[_first(task)].get_last_lr()[0],
            }
            with _interrupts_held():  # weights, schedules and step count change together
                for name, optimizer in optimizers.items():
                    scaler.unscale_(optimizer)
                    norm = torch.nn.utils.clip_grad_norm_(task.parts[name].parameters(), config.max_grad_norm)
                    record["grad_norm" if len(task.parts) == 1 else f"grad_norm_{name}"] = float(norm)
                    scaler.step(optimizer)
                    optimizer.zero_grad(set_to_none=True)
                    schedulers[name].step()
                scaler.update()
                if len(terms) > 1:
                    record.update({f"loss_{name}": value for name, value in terms.items()})
                step += 1
                rng_at_step, unlogged = _rng_state(), record
            record["groups_per_s"] = groups / (time.perf_counter() - started)
            record.update(getattr(task, "log_record", dict)())  # a task's own diagnostics (distillation)
            if evaluate is not None and ((config.eval_every and step % config.eval_every == 0) or step == total_steps):
                if main:
                    _set_mode(task, train=False)
                    record["dev"] = evaluate()
                    _set_mode(task, train=True)
                distributed.barrier()
            log.write(json.dumps(record) + "\n")
            log.flush()
            unlogged = None
            progress.update(1)
            progress.set_postfix(loss=f"{record['loss']:.4f}")
            if config.checkpoint_every and step % config.checkpoint_every == 0 and step < total_steps:
                if main:
                    _save_checkpoint(output, step, task, optimizers, schedulers, scaler, options)
                distributed.barrier()
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C; SIGTERM, which the CLI turns into SystemExit
        if config.overwrite:  # the temporary folder goes; the previous output stays
            raise RankkitError(
                f"training interrupted at step {step}; {final} was left as it was (--overwrite "
                "replaces it only when training completes). Fix: run the command again"
            ) from None
        if unlogged is not None:
            log.write(json.dumps(unlogged) + "\n")
        if main:
            _save_checkpoint(output, step, task, optimizers, schedulers, scaler, options, rng_at_step)
        raise RankkitError(
            f"training interrupted at step {step}; a checkpoint was saved. Fix: run the same command again to resume"
        ) from None
    finally:
        log.close()
        progress.close()
    _set_mode(task, train=False)
    if not main:
        return
    with atomic_dir(output / "model", overwrite=True) as folder:
        task.save(folder)
    shutil.rmtree(output / CHECKPOINTS, ignore_errors=True)
    if config.plot:
        from rankkit.train.plot import plot_training_log

        plot_training_log(output / LOG_FILE, output / "training_curves.png")
    if finish is not None:
        finish(output)
