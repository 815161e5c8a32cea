"""Length-sorted dynamic batching: group texts of similar token length so little padding is
computed, and size each batch by a token budget instead of a fixed count."""

from __future__ import annotations

from typing import Iterator, Mapping, Sequence

import torch

# what one more batch costs, in padded tokens: the per-call overhead and the lower efficiency of
# small matrix products (set by benchmarks/bench_batch_cost.py: results/batch_cost.md)
BATCH_COST = 128


def length_sorted_batches(
    lengths: Sequence[int], max_tokens: int, max_batch_size: int, batch_cost: int = BATCH_COST
) -> Iterator[list[int]]:
    """Yield lists of indices into `lengths`, longest first; each batch's padded size (rows x
    longest row) stays within max_tokens (a longer text alone is its own batch), and holds at most
    max_batch_size rows.

    Among such splits of the length-sorted texts, the one that computes the fewest padded tokens
    plus `batch_cost` per batch (dynamic programming over the sorted lengths): a few long texts
    beside many short ones, as in a batch of queries, get their own batch instead of padding the
    short ones to their length."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    width = [lengths[i] for i in order]
    best = [0] + [0] * len(order)  # best[i]: the least cost of batching the first i sorted texts
    start = [0] * (len(order) + 1)  # start[i]: where the last batch of that best split begins
    for end in range(1, len(order) + 1):
        best[end] = -1
        for first in range(end - 1, max(end - max_batch_size, 0) - 1, -1):
            rows = end - first
            if rows > 1 and rows * width[first] > max_tokens:
                break  # an earlier first row is as wide or wider: no wider batch fits either
            cost = best[first] + rows * width[first] + batch_cost
            if best[end] < 0 or cost <= best[end]:  # on a tie, the larger batch
                best[end], start[end] = cost, first
    bounds, end = [], len(order)
    while end > 0:
        bounds.append((start[end], end))
        end = start[end]
    for first, end in reversed(bounds):
        yield order[first:end]


def inverse_order(order: Sequence[int]) -> list[int]:
    """Where each input landed: rows computed in `order` (a permutation of the inputs) are put back
    in input order by indexing them with the result."""
    position = [0] * len(order)
    for row, index in enumerate(order):
        position[index] = row
    return position


def right_padded(
    encoded: Mapping[str, Sequence[Sequence[int]]], batch: Sequence[int], pad_id: int, device: torch.device
) -> dict[str, torch.Tensor]:
    """Model inputs for the rows `batch` indexes in unpadded tokenizer output (input_ids, and
    token_type_ids for pairs), right-padded to the batch's longest row: ids with `pad_id`, token
    types with 0; the attention mask is built here, so tokenizing need not store one per text."""
    lengths = [len(encoded["input_ids"][i]) for i in batch]
    width = max(lengths)
    inputs = {
        name: torch.tensor(
            [list(values[i]) + [pad_id if name == "input_ids" else 0] * (width - n) for i, n in zip(batch, lengths)],
            device=device,
        )
        for name, values in encoded.items()
        if name != "attention_mask"
    }
    inputs["attention_mask"] = torch.tensor([[1] * n + [0] * (width - n) for n in lengths], device=device)
    return inputs


def padded_batches(
    encoded: Mapping[str, Sequence[Sequence[int]]],
    lengths: Sequence[int],
    max_tokens: int,
    max_batch_size: int,
    pad_id: int,
    device: torch.device,
) -> list[dict[str, torch.Tensor]]:
    """Model inputs of every length-sorted batch of `encoded` (an export's calibration inputs)."""
    return [
        right_padded(encoded, batch, pad_id, device)
        for batch in length_sorted_batches(lengths, max_tokens, max_batch_size)
    ]
