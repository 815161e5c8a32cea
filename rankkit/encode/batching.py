"""Length-sorted dynamic batching: group texts of similar token length so little padding is
computed, and size each batch by a token budget instead of a fixed count."""

from __future__ import annotations

from typing import Iterator, Mapping, Sequence

import torch


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
