"""Length-sorted dynamic batching: group texts of similar token length so little padding is
computed, and size each batch by a token budget instead of a fixed count."""

from __future__ import annotations

from typing import Iterator, Sequence


def length_sorted_batches(lengths: Sequence[int], max_tokens: int, max_batch_size: int) -> Iterator[list[int]]:
    """Yield lists of indices into `lengths`, longest first; each batch's padded size
    (rows x longest row) stays within max_tokens, and holds at most max_batch_size rows."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batch: list[int] = []
    for index in order:
        # sorted longest first, so the batch's first row is its longest
        width = lengths[batch[0]] if batch else lengths[index]
        if batch and ((len(batch) + 1) * width > max_tokens or len(batch) >= max_batch_size):
            yield batch
            batch = []
        batch.append(index)
    if batch:
        yield batch


def inverse_order(order: Sequence[int]) -> list[int]:
    """Where each input landed: rows computed in `order` (a permutation of the inputs) are put back
    in input order by indexing them with the result."""
    position = [0] * len(order)
    for row, index in enumerate(order):
        position[index] = row
    return position
