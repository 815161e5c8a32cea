"""Reciprocal rank fusion and length-sorted dynamic batching, on hand-made inputs (pooling is
sentence-transformers' own: tests/test_st_stack.py)."""

from __future__ import annotations

import random

import pytest
import torch

from rankkit.data.runs import Hit
from rankkit.encode.batching import inverse_order, length_sorted_batches, right_padded
from rankkit.errors import RankkitError
from rankkit.retrieve.fusion import FusionConfig
from rankkit.retrieve.hybrid import DEFAULT_RRF_K, HybridRetriever, rrf_fuse

# --- reciprocal rank fusion ----------------------------------------------------------------------

A = [Hit("a", 9.0), Hit("b", 8.0), Hit("c", 7.0)]
B = [Hit("c", 0.9), Hit("a", 0.8), Hit("d", 0.7)]


def scores(hits):
    return {h.docid: h.score for h in hits}


def test_rrf_weighted_scores_by_hand():
    fused = rrf_fuse([A, B], [1.0, 0.5], k=10)
    # a: 1/(60+1) + 0.5/(60+2) = 0.016393 + 0.008065 = 0.024458
    # c: 1/(60+3) + 0.5/(60+1) = 0.015873 + 0.008197 = 0.024070
    # b: 1/(60+2)              = 0.016129
    # d:            0.5/(60+3) = 0.007937
    assert [h.docid for h in fused] == ["a", "c", "b", "d"]
    assert scores(fused) == pytest.approx({"a": 1 / 61 + 0.5 / 62, "c": 1 / 63 + 0.5 / 61, "b": 1 / 62, "d": 0.5 / 63})
    assert scores(fused)["a"] == pytest.approx(0.024458, abs=1e-6)
    assert all(isinstance(h, Hit) for h in fused)


def test_rrf_ignores_the_input_scores_only_ranks_count():
    scaled = [Hit(h.docid, h.score * 1000 - 5) for h in A]
    assert rrf_fuse([scaled, B], [1.0, 0.5], k=10) == rrf_fuse([A, B], [1.0, 0.5], k=10)


def test_rrf_equal_weights_default_k():
    fused = rrf_fuse([A, B], [1.0, 1.0], k=10)
    # a: 1/61 + 1/62 = 0.032522; c: 1/63 + 1/61 = 0.032266; b: 1/62; d: 1/63
    assert DEFAULT_RRF_K == 60
    assert [h.docid for h in fused] == ["a", "c", "b", "d"]
    assert scores(fused) == pytest.approx({"a": 1 / 61 + 1 / 62, "c": 1 / 63 + 1 / 61, "b": 1 / 62, "d": 1 / 63})


def test_rrf_k_changes_the_order():
    # with rrf_k = 0 the top rank weighs much more: c gets 1/3 + 1/1 = 1.3333, a gets 1/1 + 1/2 = 1.5
    fused = rrf_fuse([A, B], [1.0, 1.0], k=10, rrf_k=0)
    assert scores(fused) == pytest.approx({"a": 1.5, "c": 1 / 3 + 1.0, "b": 0.5, "d": 1 / 3})
    assert [h.docid for h in fused] == ["a", "c", "b", "d"]
    # weights can flip it: the second list three times as important
    flipped = rrf_fuse([A, B], [1.0, 3.0], k=10, rrf_k=0)
    # c: 1/3 + 3/1 = 3.3333; a: 1 + 3/2 = 2.5; d: 3/3 = 1; b: 1/2
    assert [h.docid for h in flipped] == ["c", "a", "d", "b"]
    assert scores(flipped) == pytest.approx({"c": 1 / 3 + 3, "a": 2.5, "d": 1.0, "b": 0.5})


def test_rrf_ties_broken_by_docid():
    # x and y swap places between the lists: identical fused scores 1/61 + 1/62
    fused = rrf_fuse([[Hit("y", 1.0), Hit("x", 0.5)], [Hit("x", 1.0), Hit("y", 0.5)]], [1.0, 1.0], k=10)
    assert [h.docid for h in fused] == ["x", "y"]
    assert fused[0].score == fused[1].score
    # three documents, each first in its own list: all 1/61, sorted by docid
    singles = rrf_fuse([[Hit("m", 1.0)], [Hit("b", 1.0)], [Hit("k", 1.0)]], [1.0, 1.0, 1.0], k=10)
    assert [h.docid for h in singles] == ["b", "k", "m"]


def test_rrf_k_cuts_the_list():
    assert [h.docid for h in rrf_fuse([A, B], [1.0, 0.5], k=2)] == ["a", "c"]
    assert [h.docid for h in rrf_fuse([A, B], [1.0, 0.5], k=1)] == ["a"]
    assert len(rrf_fuse([A, B], [1.0, 0.5], k=100)) == 4


def test_rrf_empty_and_mismatched():
    assert rrf_fuse([[], []], [1.0, 1.0], k=10) == []
    assert [h.docid for h in rrf_fuse([A, []], [1.0, 1.0], k=10)] == ["a", "b", "c"]
    with pytest.raises(ValueError):
        rrf_fuse([A, B], [1.0], k=10)


class FakeRetriever:
    def __init__(self, name: str, ranking: list[Hit]):
        self.name, self.ranking, self.asked = name, ranking, []

    def search(self, query, k=10):
        self.asked.append(k)
        return self.ranking[:k]

    def batch_search(self, queries, k=10):
        self.asked.append(k)
        return {qid: self.ranking[:k] for qid in queries if qid != "only-in-one" or self.name == "one"}


def test_hybrid_retriever_fuses_its_retrievers():
    one, two = FakeRetriever("one", A), FakeRetriever("two", B)
    hybrid = HybridRetriever([one, two], weights=[1.0, 0.5], config=FusionConfig(method="rrf", depth=50))
    assert hybrid.name == "hybrid:one+two"
    assert hybrid.search("q", k=2) == rrf_fuse([A, B], [1.0, 0.5], k=2)
    assert one.asked == [50] and two.asked == [50]
    run = hybrid.batch_search({"q1": "x", "only-in-one": "y"}, k=3)
    assert run["q1"] == rrf_fuse([A, B], [1.0, 0.5], k=3)
    assert run["only-in-one"] == rrf_fuse([A, []], [1.0, 0.5], k=3)


@pytest.mark.parametrize("retrievers, weights", [(1, None), (2, [1.0]), (2, [1.0, 1.0, 1.0])])
def test_hybrid_retriever_needs_two_retrievers_and_one_weight_each(retrievers, weights):
    with pytest.raises(RankkitError) as excinfo:
        HybridRetriever([FakeRetriever(str(i), A) for i in range(retrievers)], weights=weights)
    assert "Fix:" in str(excinfo.value)


# --- length-sorted batching ----------------------------------------------------------------------


def test_batches_by_hand():
    lengths = [5, 20, 3, 20, 8, 1, 12]
    # longest first: 1 (20), 3 (20), 6 (12), 4 (8), 0 (5), 2 (3), 5 (1); at most 40 padded tokens
    # and 3 rows a batch. Cost: padded tokens + batch_cost per batch.
    # batch_cost 0: no padding at all, except between equal lengths (a tie keeps the larger batch)
    assert list(length_sorted_batches(lengths, 40, 3, batch_cost=0)) == [[1, 3], [6], [4], [0], [2], [5]]
    # batch_cost 32: [1, 3] 40 + [6, 4] 24 + [0, 2, 5] 15 + 3 x 32 = 175; filling each batch greedily,
    # [1, 3] [6, 4, 0] [2, 5], costs 40 + 36 + 6 + 96 = 178
    assert list(length_sorted_batches(lengths, 40, 3, batch_cost=32)) == [[1, 3], [6, 4], [0, 2, 5]]
    # a batch costing more than any padding: the fewest batches the limits allow
    assert len(list(length_sorted_batches(lengths, 40, 3, batch_cost=1000))) == 3


def test_short_texts_are_not_padded_to_a_few_long_ones():
    lengths = [60] + [8] * 40  # one long query among short ones, as in a batch of queries
    batches = list(length_sorted_batches(lengths, 4096, 64, batch_cost=32))
    assert batches == [[0], list(range(1, 41))]  # 60 + 320 + 64, where one batch would pad to 41 x 60


def test_single_over_budget_text_gets_its_own_batch():
    assert list(length_sorted_batches([10, 100, 10], max_tokens=50, max_batch_size=8)) == [[1], [0, 2]]
    assert list(length_sorted_batches([100], max_tokens=50, max_batch_size=8)) == [[0]]
    assert list(length_sorted_batches([60, 70], max_tokens=50, max_batch_size=8)) == [[1], [0]]


def test_max_batch_size_caps_rows_even_within_budget():
    batches = list(length_sorted_batches([1] * 5, max_tokens=1000, max_batch_size=2))
    assert [len(batch) for batch in batches] in ([2, 2, 1], [1, 2, 2]) and sorted(sum(batches, [])) == [0, 1, 2, 3, 4]


def test_no_texts_no_batches():
    assert list(length_sorted_batches([], max_tokens=100, max_batch_size=4)) == []


@pytest.mark.parametrize("seed", range(20))
def test_batching_invariants_on_random_lengths(seed):
    rng = random.Random(seed)
    lengths = [rng.randint(1, 300) for _ in range(rng.randint(1, 200))]
    max_tokens, max_batch = rng.choice([64, 256, 1000, 4096]), rng.randint(1, 32)
    batches = list(length_sorted_batches(lengths, max_tokens, max_batch))
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(len(lengths)))  # every index exactly once
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)  # longest first, throughout
    for batch in batches:
        assert 1 <= len(batch) <= max_batch
        padded = len(batch) * max(lengths[i] for i in batch)
        assert padded <= max_tokens or len(batch) == 1


def test_inverse_order_puts_rows_back_in_input_order():
    order = [2, 0, 3, 1]  # rows computed for inputs 2, 0, 3, 1
    rows = ["row of 2", "row of 0", "row of 3", "row of 1"]
    assert inverse_order(order) == [1, 3, 0, 2]
    assert [rows[i] for i in inverse_order(order)] == ["row of 0", "row of 1", "row of 2", "row of 3"]
    assert inverse_order([]) == []


def test_right_padded_pads_ids_and_token_types_and_builds_the_mask():
    encoded = {
        "input_ids": [[5, 6], [7, 8, 9], [4]],
        "token_type_ids": [[0, 1], [0, 0, 1], [0]],
        "attention_mask": [[1, 1], [1, 1, 1], [1]],
    }
    inputs = right_padded(encoded, [1, 0, 2], pad_id=3, device=torch.device("cpu"))
    assert inputs["input_ids"].tolist() == [[7, 8, 9], [5, 6, 3], [4, 3, 3]]
    assert inputs["token_type_ids"].tolist() == [[0, 0, 1], [0, 1, 0], [0, 0, 0]]
    assert inputs["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0], [1, 0, 0]]
    without_mask = right_padded({"input_ids": encoded["input_ids"]}, [0, 2], pad_id=0, device=torch.device("cpu"))
    assert set(without_mask) == {"input_ids", "attention_mask"}
    assert without_mask["attention_mask"].tolist() == [[1, 1], [1, 0]]
