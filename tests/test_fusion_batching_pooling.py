"""Reciprocal rank fusion, length-sorted dynamic batching and pooling, on hand-made inputs."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from rankkit.data.runs import Hit
from rankkit.encode.batching import inverse_order, length_sorted_batches, right_padded
from rankkit.encode.pooling import PoolingConfig, pool, read_pooling_config
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
    assert scores(fused) == pytest.approx({"a": 1 / 61 + 0.5 / 62, "c": 1 / 63 + 0.5 / 61,
                                           "b": 1 / 62, "d": 0.5 / 63})
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
    # longest first: 1 (20), 3 (20), 6 (12), 4 (8), 0 (5), 2 (3), 5 (1)
    # [1, 3]: 2 x 20 = 40 fits; adding 6 would pad to 3 x 20 = 60 > 40
    # [6, 4, 0]: 3 x 12 = 36 fits; a fourth row is over max_batch_size = 3
    # [2, 5]: 2 x 3 = 6
    assert list(length_sorted_batches(lengths, max_tokens=40, max_batch_size=3)) == [[1, 3], [6, 4, 0], [2, 5]]


def test_single_over_budget_text_gets_its_own_batch():
    assert list(length_sorted_batches([10, 100, 10], max_tokens=50, max_batch_size=8)) == [[1], [0, 2]]
    assert list(length_sorted_batches([100], max_tokens=50, max_batch_size=8)) == [[0]]
    assert list(length_sorted_batches([60, 70], max_tokens=50, max_batch_size=8)) == [[1], [0]]


def test_max_batch_size_caps_rows_even_within_budget():
    assert list(length_sorted_batches([1] * 5, max_tokens=1000, max_batch_size=2)) == [[0, 1], [2, 3], [4]]


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
    encoded = {"input_ids": [[5, 6], [7, 8, 9], [4]], "token_type_ids": [[0, 1], [0, 0, 1], [0]],
               "attention_mask": [[1, 1], [1, 1, 1], [1]]}
    inputs = right_padded(encoded, [1, 0, 2], pad_id=3, device=torch.device("cpu"))
    assert inputs["input_ids"].tolist() == [[7, 8, 9], [5, 6, 3], [4, 3, 3]]
    assert inputs["token_type_ids"].tolist() == [[0, 0, 1], [0, 1, 0], [0, 0, 0]]
    assert inputs["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0], [1, 0, 0]]
    without_mask = right_padded({"input_ids": encoded["input_ids"]}, [0, 2], pad_id=0, device=torch.device("cpu"))
    assert set(without_mask) == {"input_ids", "attention_mask"}
    assert without_mask["attention_mask"].tolist() == [[1, 1], [1, 0]]

# --- pooling -------------------------------------------------------------------------------------

# batch of 3 rows, 3 tokens, dim 2; right-padded (mask 0 = padding)
HIDDEN = torch.tensor([
    [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]],  # last token is padding, and larger than the kept ones
    [[-1.0, 0.0], [2.0, -2.0], [7.0, 7.0]],  # no padding
    [[-3.0, -1.0], [-2.0, -5.0], [0.0, 0.0]],  # all kept values negative, padding 0
])
MASK = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 1, 0]])


def test_pool_mean_ignores_padding():
    expected = torch.tensor([[2.0, 3.0], [8 / 3, 5 / 3], [-2.5, -3.0]])
    torch.testing.assert_close(pool(HIDDEN, MASK, "mean"), expected)


def test_pool_cls_takes_the_first_token():
    torch.testing.assert_close(pool(HIDDEN, MASK, "cls"), torch.tensor([[1.0, 2.0], [-1.0, 0.0], [-3.0, -1.0]]))


def test_pool_max_ignores_padding_even_when_values_are_negative():
    # row 0: padding (5, 6) would win if not masked; row 2: padding 0 would beat (-2, -1)
    torch.testing.assert_close(pool(HIDDEN, MASK, "max"), torch.tensor([[3.0, 4.0], [7.0, 7.0], [-2.0, -1.0]]))


def test_pool_lasttoken_takes_the_last_kept_position():
    torch.testing.assert_close(pool(HIDDEN, MASK, "lasttoken"), torch.tensor([[3.0, 4.0], [7.0, 7.0], [-2.0, -5.0]]))


def test_pool_accepts_a_boolean_mask_and_half_precision():
    out = pool(HIDDEN.to(torch.bfloat16), MASK.bool(), "max")
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), torch.tensor([[3.0, 4.0], [7.0, 7.0], [-2.0, -1.0]]))
    torch.testing.assert_close(pool(HIDDEN, MASK.bool(), "mean"), pool(HIDDEN, MASK, "mean"))


def test_pool_mean_of_a_fully_masked_row_is_zero_not_nan():
    out = pool(HIDDEN[:1], torch.zeros(1, 3, dtype=torch.long), "mean")
    torch.testing.assert_close(out, torch.zeros(1, 2))


def test_pool_unknown_mode():
    with pytest.raises(ValueError, match="weightedmean"):
        pool(HIDDEN, MASK, "weightedmean")


# --- pooling config ------------------------------------------------------------------------------

TRANSFORMER = {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}
NORMALIZE = {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}


def st_folder(root: Path, pooling: dict, normalize: bool, max_seq_length: int | None = None,
              pooling_path: str = "1_Pooling") -> Path:
    modules = [TRANSFORMER, {"idx": 1, "name": "1", "path": pooling_path,
                             "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        modules.append(NORMALIZE)
    root.mkdir(parents=True, exist_ok=True)
    (root / "modules.json").write_text(json.dumps(modules))
    (root / pooling_path).mkdir()
    flags = {"pooling_mode_cls_token": False, "pooling_mode_mean_tokens": False, "pooling_mode_max_tokens": False,
             "pooling_mode_mean_sqrt_len_tokens": False, "pooling_mode_weightedmean_tokens": False,
             "pooling_mode_lasttoken": False}
    (root / pooling_path / "config.json").write_text(json.dumps({"word_embedding_dimension": 8, **flags, **pooling}))
    if max_seq_length is not None:
        (root / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_seq_length,
                                                                    "do_lower_case": False}))
    return root


def test_config_mean_with_normalize(tmp_path):
    folder = st_folder(tmp_path / "m", {"pooling_mode_mean_tokens": True}, normalize=True, max_seq_length=256)
    assert read_pooling_config(folder) == PoolingConfig(mode="mean", normalize=True, max_length=256)


def test_config_cls_without_normalize(tmp_path):
    folder = st_folder(tmp_path / "m", {"pooling_mode_cls_token": True}, normalize=False)
    assert read_pooling_config(folder) == PoolingConfig(mode="cls", normalize=False, max_length=None)


@pytest.mark.parametrize("key, mode", [("pooling_mode_max_tokens", "max"), ("pooling_mode_lasttoken", "lasttoken")])
def test_config_other_supported_modes(tmp_path, key, mode):
    folder = st_folder(tmp_path / "m", {key: True}, normalize=False, max_seq_length=128)
    assert read_pooling_config(folder) == PoolingConfig(mode=mode, normalize=False, max_length=128)


def test_config_pooling_folder_named_in_modules_json(tmp_path):
    folder = st_folder(tmp_path / "m", {"pooling_mode_cls_token": True}, normalize=True, pooling_path="pool")
    assert read_pooling_config(folder).mode == "cls"


def test_config_pooling_mode_string(tmp_path):
    folder = st_folder(tmp_path / "m", {"pooling_mode": "max"}, normalize=True)
    assert read_pooling_config(folder).mode == "max"


def test_config_combined_modes_are_refused(tmp_path):
    folder = st_folder(tmp_path / "m", {"pooling_mode_mean_tokens": True, "pooling_mode_cls_token": True},
                       normalize=True)
    with pytest.raises(RankkitError) as excinfo:
        read_pooling_config(folder)
    message = str(excinfo.value)
    assert str(folder) in message and "combines" in message and "Fix:" in message


@pytest.mark.parametrize("key", ["pooling_mode_weightedmean_tokens", "pooling_mode_mean_sqrt_len_tokens"])
def test_config_unsupported_sentence_transformers_modes_are_refused(tmp_path, key):
    # regression: these flags used to be ignored, so such a model was silently mean-pooled
    folder = st_folder(tmp_path / "m", {key: True}, normalize=True)
    with pytest.raises(RankkitError) as excinfo:
        read_pooling_config(folder)
    assert str(folder) in str(excinfo.value) and "unsupported" in str(excinfo.value) and "Fix:" in str(excinfo.value)


def test_config_unknown_pooling_mode_string_is_refused(tmp_path):
    folder = st_folder(tmp_path / "m", {"pooling_mode": "attention"}, normalize=True)
    with pytest.raises(RankkitError) as excinfo:
        read_pooling_config(folder)
    assert "'attention'" in str(excinfo.value) and "Fix:" in str(excinfo.value)


def test_config_plain_transformers_folder_is_mean(tmp_path):
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 8}))
    config = read_pooling_config(folder)
    assert config.mode == "mean"
    assert config.max_length is None


def test_config_of_the_conftest_tiny_model_layout(tmp_path):
    # the layout tests/conftest.py writes (pooling flags without the mean_sqrt/weightedmean keys)
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "modules.json").write_text(json.dumps([TRANSFORMER, {"idx": 1, "name": "1", "path": "1_Pooling",
                                                                     "type": "sentence_transformers.models.Pooling"}]))
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": 32, "pooling_mode_mean_tokens": False, "pooling_mode_cls_token": False,
        "pooling_mode_max_tokens": True}))
    assert read_pooling_config(tmp_path) == PoolingConfig(mode="max", normalize=False, max_length=None)
