"""Distillation losses and the discriminator's weights, on hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from rankkit.distill.discriminator import Discriminator, discriminator_loss, item_features, role_weights
from rankkit.train.losses import (
    listwise_kl_loss,
    margin_mse_loss,
    softmax_cross_entropy_loss,
    weighted_contrastive_loss,
)


def test_listwise_kl_is_zero_for_equal_lists_and_matches_hand_value():
    same = torch.tensor([[2.0, 0.0, -1.0]])
    assert float(listwise_kl_loss(same, same)) == pytest.approx(0.0, abs=1e-7)
    # teacher softmax([0, ln 3]) = [1/4, 3/4]; student softmax([0, 0]) = [1/2, 1/2]
    teacher, student = torch.tensor([[0.0, math.log(3.0)]]), torch.zeros(1, 2)
    expected = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert float(listwise_kl_loss(student, teacher)) == pytest.approx(expected, rel=1e-6)


def test_listwise_kl_temperature_scales_both_lists_and_multiplies_by_t_squared():
    teacher, student = torch.tensor([[0.0, 2 * math.log(3.0)]]), torch.zeros(1, 2)
    expected = 4 * (0.25 * math.log(0.5) + 0.75 * math.log(1.5))  # T = 2: teacher / 2 = [0, ln 3]
    assert float(listwise_kl_loss(student, teacher, temperature=2.0)) == pytest.approx(expected, rel=1e-6)


def test_listwise_kl_does_not_train_the_teacher():
    teacher = torch.tensor([[1.0, 0.0]], requires_grad=True)
    student = torch.tensor([[0.0, 1.0]], requires_grad=True)
    listwise_kl_loss(student, teacher).backward()
    assert teacher.grad is None and student.grad is not None


def test_margin_mse_matches_hand_value_and_ignores_offsets():
    student = torch.tensor([[3.0, 1.0, 2.0]])
    teacher = torch.tensor([[1.0, 0.0, 0.0]])
    # margins: student [2, 1], teacher [1, 1] -> ((2-1)^2 + 0^2) / 2
    assert float(margin_mse_loss(student, teacher)) == pytest.approx(0.5)
    assert float(margin_mse_loss(student + 100.0, teacher)) == pytest.approx(0.5)


def test_weighted_contrastive_loss_matches_hand_value():
    scores = torch.tensor([[1.0, 0.0, 0.0]])
    loss = weighted_contrastive_loss(scores, torch.tensor([[0.5, 1.0]]), torch.tensor([0.8]))
    assert float(loss) == pytest.approx(0.8 * (math.log(math.e + 1.5) - 1.0), rel=1e-6)


def test_weighted_contrastive_loss_with_unit_weights_is_softmax_cross_entropy():
    scores = torch.tensor([[0.3, 1.2, -0.4], [2.0, 0.1, 0.5]])
    assert float(weighted_contrastive_loss(scores)) == pytest.approx(float(softmax_cross_entropy_loss(scores)))
    assert float(weighted_contrastive_loss(scores, torch.ones(2, 2), torch.ones(2))) == pytest.approx(
        float(softmax_cross_entropy_loss(scores))
    )


def test_zero_weight_removes_a_negative():
    scores = torch.tensor([[1.0, 0.0, 5.0]])
    dropped = weighted_contrastive_loss(scores, torch.tensor([[1.0, 0.0]]))
    assert float(dropped) == pytest.approx(float(softmax_cross_entropy_loss(scores[:, :2])), rel=1e-6)


def test_role_weights_give_each_negative_the_probability_of_its_own_role_normalised_to_mean_one():
    p = torch.tensor([[0.8, 0.4]])  # P(teacher-consistent)
    adversarial = torch.tensor([[False, True]])
    weights = role_weights(p, adversarial)
    # own-role probabilities [0.8, 0.6], mean 0.7
    assert weights.tolist()[0] == pytest.approx([0.8 / 0.7, 0.6 / 0.7])


def test_discriminator_weights_change_the_contrastive_loss_as_documented():
    scores = torch.tensor([[1.0, 0.0, 1.0]])
    weights = role_weights(torch.tensor([[0.8, 0.4]]), torch.tensor([[False, True]]))
    weighted = weighted_contrastive_loss(scores, weights)
    plain = weighted_contrastive_loss(scores)
    e = math.e
    assert float(plain) == pytest.approx(math.log(e + 1 + e) - 1.0, rel=1e-6)
    assert float(weighted) == pytest.approx(math.log(e + (8 / 7) * 1 + (6 / 7) * e) - 1.0, rel=1e-6)
    assert float(weighted) < float(plain)  # the doubtful self-adversarial negative pushes less


def test_item_features_standardise_the_student_scores_and_keep_the_others():
    features = item_features(torch.tensor([[0.5, -1.0]]), torch.tensor([[2.0, 4.0]]), torch.tensor([[0.1, 0.9]]))
    assert features.shape == (1, 2, 3)
    assert features[0, :, 0].tolist() == [0.5, -1.0]
    assert features[0, :, 1].tolist() == pytest.approx([-1 / math.sqrt(2), 1 / math.sqrt(2)])
    assert features[0, :, 2].tolist() == pytest.approx([0.1, 0.9])


def test_discriminator_learns_to_separate_the_two_kinds():
    torch.manual_seed(0)
    model = Discriminator()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    adversarial = torch.tensor([[False, True] * 8])
    features = torch.stack([torch.where(adversarial, 1.0, -1.0), torch.zeros(1, 16), torch.zeros(1, 16)], dim=-1)
    first = float(discriminator_loss(model(features), adversarial).detach())
    for _ in range(100):
        optimizer.zero_grad()
        loss = discriminator_loss(model(features), adversarial)
        loss.backward()
        optimizer.step()
    assert float(loss.detach()) < first / 4
    assert ((model(features) > 0) == ~adversarial).all()
