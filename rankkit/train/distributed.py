"""Data-parallel training under torchrun (torch.distributed): gloo on CPU, NCCL on CUDA.

Every rank builds the same epoch of global batches; rank r trains on its contiguous slice of
each (`shard_of_batch`), so the slices concatenated in rank order are the batch one process
would train on. DistributedDataParallel averages the gradients; `weight_of_shard` scales a rank's
loss (a mean over its slice) so that the average is the gradient of the mean over the whole
batch, however the batch divides. Outside torchrun (WORLD_SIZE unset or 1) every helper is the
identity or a no-op, and training runs as before.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from typing import Callable, Iterator, Sequence, TypeVar

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn

from rankkit.errors import RankkitError

T = TypeVar("T")


def launched() -> bool:
    """Whether torchrun started this process as one of several (WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_distributed() -> bool:
    """Whether a process group of more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Rank 0: the process that writes checkpoints, logs and the model. Before and after the
    process group exists, torchrun's RANK 0 (so writes outside the training loop happen once);
    True without torchrun."""
    if is_distributed():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


@contextlib.contextmanager
def process_group(device: torch.device) -> Iterator[None]:
    """Initialise the process group for the block when torchrun launched several processes and
    none is running yet (NCCL for a CUDA device, else gloo); destroy it at the end."""
    if not launched() or dist.is_initialized():
        yield
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield
    finally:
        dist.destroy_process_group()


def shard_of_batch(batch: Sequence[T]) -> list[T]:
    """This rank's contiguous slice of a global batch (the first len % W ranks take one more)."""
    world, me = world_size(), rank()
    if len(batch) < world:
        raise RankkitError(
            f"a batch of {len(batch)} groups cannot be split over {world} processes (the last batch "
            "of an epoch holds the groups left over). Fix: pass a --batch-size that leaves no small "
            "last batch, or start fewer processes"
        )
    size, extra = divmod(len(batch), world)
    start = me * size + min(me, extra)
    return list(batch[start : start + size + (me < extra)])


def weight_of_shard(shard: Sequence, batch: Sequence) -> float:
    """W * len(shard) / len(batch): a rank's mean loss over its shard times this, averaged over
    the W ranks (as DDP averages gradients), is the mean over the batch. 1 in one process."""
    return world_size() * len(shard) / len(batch)


def mean_over_ranks(values: list[float], device: torch.device) -> list[float]:
    """The ranks' `values` averaged (the logged loss: the same with any number of processes)."""
    if not is_distributed():
        return values
    total = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return (total / world_size()).tolist()


def from_main(value: T) -> T:
    """Rank 0's `value` (any picklable object) on every rank."""
    if not is_distributed():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_with_grad(tensor: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Every rank's `tensor` concatenated in rank order along the first dimension (whose size may
    differ between ranks), and the row where this rank's own part starts.

    Gradients flow back to every rank's part: torch.distributed.nn's all_gather sums, in its
    backward, each rank's gradient for a part onto the rank that computed it."""
    if not is_distributed():
        return tensor, 0
    rows = torch.tensor([tensor.size(0)], device=tensor.device)
    sizes = [torch.zeros_like(rows) for _ in range(world_size())]
    dist.all_gather(sizes, rows)
    counts = [int(size) for size in sizes]
    padded = torch.nn.functional.pad(tensor, (0, 0) * (tensor.dim() - 1) + (0, max(counts) - tensor.size(0)))
    with warnings.catch_warnings():  # deprecated by torch 2.13 for a private module that older torch lacks
        warnings.simplefilter("ignore", FutureWarning)
        parts = dist_nn.all_gather(padded.contiguous())
    return torch.cat([part[:count] for part, count in zip(parts, counts)]), sum(counts[: rank()])


class _TaskModule(torch.nn.Module):
    """A task's parts as one module whose forward is the task's loss on a shard.

    DistributedDataParallel synchronises the gradients of a forward run through it; the
    encoders call their inner modules (the transformer, the scoring head), not the part's own
    forward, so the task's loss is the forward, and one wrapper covers every part (both CET models)."""

    def __init__(self, parts: dict[str, torch.nn.Module], loss: Callable[[list], dict[str, torch.Tensor]]):
        super().__init__()
        self.parts = torch.nn.ModuleDict(parts)
        self.loss = loss

    def forward(self, shard: list) -> dict[str, torch.Tensor]:
        return self.loss(shard)


def data_parallel_loss(
    parts: dict[str, torch.nn.Module], loss: Callable[[list], dict[str, torch.Tensor]], device: torch.device
) -> Callable[[list], dict[str, torch.Tensor]]:
    """The task's loss as the forward of DistributedDataParallel over its parts, when distributed
    (else `loss` itself). find_unused_parameters: some parameters get no gradient (an encoder's
    pooler that bi-encoders skip)."""
    if not is_distributed():
        return loss
    return torch.nn.parallel.DistributedDataParallel(
        _TaskModule(parts, loss),
        device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=True,
    )
