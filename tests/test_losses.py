"""The training losses against values computed by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import math

import pytest
import torch

from rankkit.train.losses import (
    cet_pair_weights,
    info_nce_loss,
    pointwise_bce_loss,
    softmax_cross_entropy_loss,
    weighted_pairwise_softmax_loss,
)

e = math.e


def close(tensor: torch.Tensor, expected: float, tol: float = 1e-6) -> None:
    assert tensor.dim() == 0
    assert float(tensor) == pytest.approx(expected, abs=tol)


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


# --- InfoNCE ---------------------------------------------------------------------------------------


def test_info_nce_with_a_mined_negative_by_hand():
    queries = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    positives = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    negatives = torch.tensor([[0.5, 0.0]])
    # documents = [p1, p2, n]; similarities / 0.5:
    #   q1: [1, 0, 0.5] / 0.5 = [2, 0, 1]  -> -log(e^2 / (e^2 + e^0 + e^1)) = log(e^2 + 1 + e) - 2
    #   q2: [0, 1, 0]   / 0.5 = [0, 2, 0]  -> -log(e^2 / (e^0 + e^2 + e^0)) = log(e^2 + 2) - 2
    expected = ((math.log(e**2 + 1 + e) - 2) + (math.log(e**2 + 2) - 2)) / 2
    close(info_nce_loss(queries, positives, negatives, temperature=0.5), expected)


def test_info_nce_in_batch_only_by_hand():
    queries = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    positives = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # q1: [2, 0] -> log(e^2 + 1) - 2 ; q2: [0, 2] -> the same
    close(info_nce_loss(queries, positives, None, temperature=0.5), math.log(e**2 + 1) - 2)


def test_info_nce_mined_negatives_are_shared_by_every_query():
    # a negative that only matches q2 raises only q2's term: q1 . n = 0, q2 . n = 1
    queries = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    positives = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    negatives = torch.tensor([[0.0, 1.0]])
    # q1: [2, 0, 0] -> log(e^2 + 2) - 2 ; q2: [0, 2, 2] -> log(1 + 2 e^2) - 2
    expected = ((math.log(e**2 + 2) - 2) + (math.log(1 + 2 * e**2) - 2)) / 2
    close(info_nce_loss(queries, positives, negatives, temperature=0.5), expected)


# --- softmax cross-entropy -------------------------------------------------------------------------

SCORES = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
# row 1: -log(e^2 / (e^2 + 1 + 1)) = log(e^2 + 2) - 2
# row 2: -log(e^0 / (1 + e + 1))   = log(2 + e)
ROW1, ROW2 = math.log(e**2 + 2) - 2, math.log(2 + e)


def test_softmax_cross_entropy_by_hand():
    close(softmax_cross_entropy_loss(SCORES), (ROW1 + ROW2) / 2)


def test_softmax_cross_entropy_with_weights_by_hand():
    # weights [1, 3]: (1 * row1 + 3 * row2) / 2 (the plain mean of the weighted losses)
    close(softmax_cross_entropy_loss(SCORES, torch.tensor([1.0, 3.0])), (ROW1 + 3 * ROW2) / 2)


def test_softmax_cross_entropy_with_one_negative_is_the_pairwise_loss():
    positive, negative = torch.tensor([1.0, -0.5]), torch.tensor([[0.0], [2.0]])
    listwise = softmax_cross_entropy_loss(torch.cat([positive.unsqueeze(1), negative], dim=1))
    # softplus(0 - 1) and softplus(2 + 0.5)
    close(listwise, (softplus(-1.0) + softplus(2.5)) / 2)
    close(weighted_pairwise_softmax_loss(positive, negative), float(listwise))


# --- pointwise BCE ---------------------------------------------------------------------------------


def test_pointwise_bce_by_hand():
    ln3 = math.log(3.0)
    scores = torch.tensor([[0.0, ln3], [ln3, 0.0]])
    labels = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    # sigmoid(0) = 1/2, sigmoid(ln 3) = 3/4
    #   (0, y=1): -ln(1/2) = ln 2      (ln3, y=0): -ln(1/4) = ln 4
    #   (ln3, y=1): -ln(3/4) = ln 4/3  (0, y=0): -ln(1/2) = ln 2
    # mean = (ln 2 + ln 4 + ln 4/3 + ln 2) / 4 = ln(64/3) / 4
    close(pointwise_bce_loss(scores, labels), math.log(64 / 3) / 4)


def test_pointwise_bce_accepts_integer_labels():
    close(pointwise_bce_loss(torch.tensor([[0.0, 0.0]]), torch.tensor([[1, 0]])), math.log(2))


# --- CET: weights and the weighted pairwise loss ---------------------------------------------------


def test_cet_pair_weights_by_hand():
    scores = torch.tensor([0.0, 2.0, -2.0])
    # 1 / (1 - sigmoid(s / 2)): sigmoid(0) = 1/2 -> 2; sigmoid(1) = e / (1 + e) -> 1 + e;
    # sigmoid(-1) = 1 / (1 + e) -> (1 + e) / e = 1 + 1/e
    expected = torch.tensor([2.0, 1 + e, 1 + 1 / e])
    assert torch.allclose(cet_pair_weights(scores, 2.0), expected, atol=1e-6)
    assert torch.allclose(cet_pair_weights(scores, 2.0), 1 / (1 - torch.sigmoid(scores / 2.0)), atol=1e-5)


def test_weighted_pairwise_softmax_loss_by_hand():
    positive = torch.tensor([1.0, 0.0])
    negatives = torch.tensor([[1.0, 0.0], [2.0, 0.0]])
    weights = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    # softplus(n - p): row 1: softplus(0) = ln 2, softplus(-1) = ln(1 + 1/e)
    #                  row 2: softplus(2) = ln(1 + e^2), softplus(0) = ln 2
    pairs = [math.log(2), math.log(1 + 1 / e), math.log(1 + e**2), math.log(2)]
    close(
        weighted_pairwise_softmax_loss(positive, negatives, weights),
        (1 * pairs[0] + 2 * pairs[1] + 3 * pairs[2] + 4 * pairs[3]) / 4,
    )
    close(weighted_pairwise_softmax_loss(positive, negatives), sum(pairs) / 4)


def test_weighted_pairwise_loss_is_stable_for_large_margins():
    loss = weighted_pairwise_softmax_loss(torch.tensor([0.0]), torch.tensor([[1000.0]]))
    close(loss, 1000.0, tol=1e-3)  # softplus(1000) = 1000, not inf
    close(weighted_pairwise_softmax_loss(torch.tensor([1000.0]), torch.tensor([[0.0]])), 0.0)


def test_gradients_do_not_flow_through_cet_weights():
    other = torch.tensor([[0.5, -1.0]], requires_grad=True)
    weights = cet_pair_weights(other, 2.0)
    assert not weights.requires_grad
    positive = torch.tensor([0.3], requires_grad=True)
    negatives = torch.tensor([[0.1, 0.7]], requires_grad=True)
    weighted_pairwise_softmax_loss(positive, negatives, weights).backward()
    assert other.grad is None
    # d/dn of mean(w * softplus(n - p)) = w * sigmoid(n - p) / 2
    w = 1 + torch.exp(torch.tensor([0.25, -0.5]))
    expected = w * torch.sigmoid(torch.tensor([0.1 - 0.3, 0.7 - 0.3])) / 2
    assert torch.allclose(negatives.grad[0], expected, atol=1e-6)
    assert float(positive.grad[0]) == pytest.approx(-float(expected.sum()), abs=1e-6)


def test_cet_with_infinite_temperature_is_twice_plain_pairwise_training():
    relevance = torch.tensor([[1.0, 0.0, 2.0], [-1.0, 0.5, -3.0]])
    selection = torch.tensor([[0.0, 5.0, -5.0], [2.0, 1.0, 30.0]])
    weights = cet_pair_weights(selection[:, 1:], 1e9)
    assert torch.allclose(weights, torch.full_like(weights, 2.0))
    cet = weighted_pairwise_softmax_loss(relevance[:, 0], relevance[:, 1:], weights)
    plain = weighted_pairwise_softmax_loss(relevance[:, 0], relevance[:, 1:])
    assert float(cet) == pytest.approx(2 * float(plain), rel=1e-6)
