"""The distillation task's loss: terms as documented, the discriminator's weights applied, plain
distillation without the contrastive term; and the groups it is fed."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rankkit.distill.discriminator import Discriminator
from rankkit.distill.groups import CANDIDATE, POSITIVE, DistillGroup, contrastive_group, plain_group
from rankkit.distill.knowledge import HARD, SELF_ADVERSARIAL, QueryKnowledge
from rankkit.distill.task import DistillTask
from rankkit.errors import RankkitError
from rankkit.mining.candidates import Candidate


class FixedScorer:
    """A stand-in student that gives every batch the same fixed scores."""

    kind = "fixed"

    def __init__(self, scores: list[list[float]]):
        self.module = torch.nn.Linear(1, 1)
        self.device = torch.device("cpu")
        self.scores = torch.tensor(scores, requires_grad=True)

    def group_scores(self, batch):
        return self.scores

    def save(self, folder):
        raise AssertionError("not saved in these tests")


def _group(kinds, teacher, confidence=1.0) -> DistillGroup:
    n = len(kinds) - 1
    return DistillGroup(
        "q",
        "query",
        "pos",
        "p",
        tuple(f"n{i}" for i in range(n)),
        tuple(f"n{i}" for i in range(n)),
        teacher_scores=tuple(teacher),
        teacher_z=tuple(0.0 for _ in kinds),
        source_ranks=tuple(0.5 for _ in kinds),
        kinds=tuple(kinds),
        confidence=confidence,
    )


def _constant_discriminator(probability: float) -> Discriminator:
    model = Discriminator()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        model.net[-1].bias.fill_(math.log(probability / (1 - probability)))
    return model


def test_contrastive_loss_weights_negatives_by_the_discriminator_as_documented():
    scores = [[1.0, 0.0, 1.0]]
    group = _group((POSITIVE, HARD, SELF_ADVERSARIAL), teacher=[1.0, 0.0, 1.0], confidence=0.5)
    task = DistillTask(FixedScorer(scores), lr=1e-3, discriminator=_constant_discriminator(0.8))
    losses = task.loss([group])
    # own-role probabilities: hard 0.8, self-adversarial 1 - 0.8 = 0.2; mean 0.5 -> weights 1.6, 0.4
    e = math.e
    contrastive = 0.5 * (math.log(e + 1.6 * 1 + 0.4 * e) - 1.0)
    assert task.log_record()["contrastive_loss"] == pytest.approx(contrastive, rel=1e-5)
    assert task.log_record()["distill_loss"] == pytest.approx(0.0, abs=1e-6)  # student = teacher scores
    assert losses["student"].item() == pytest.approx(contrastive, rel=1e-5)
    assert task.log_record()["weight_hard"] == pytest.approx(1.6)
    assert task.log_record()["weight_self_adversarial"] == pytest.approx(0.4)
    # BCE of p = 0.8 against targets [1, 0]
    assert losses["discriminator"].item() == pytest.approx(-(math.log(0.8) + math.log(0.2)) / 2, rel=1e-5)


def test_without_the_discriminator_negatives_weigh_one():
    scores = [[1.0, 0.0, 1.0]]
    task = DistillTask(FixedScorer(scores), lr=1e-3, distill_weight=0.0)
    losses = task.loss([_group((POSITIVE, HARD, SELF_ADVERSARIAL), teacher=[0.0, 0.0, 0.0])])
    assert set(losses) == {"student"}
    assert losses["student"].item() == pytest.approx(math.log(2 * math.e + 1) - 1.0, rel=1e-6)


def test_plain_distillation_is_the_score_term_only():
    scores = [[3.0, 1.0, 2.0]]
    teacher = [1.0, 0.0, 0.0]
    margin = DistillTask(FixedScorer(scores), lr=1e-3, mode="plain", distill_loss="margin-mse")
    assert margin.loss([_group((POSITIVE, CANDIDATE, CANDIDATE), teacher)])["student"].item() == pytest.approx(0.5)
    kl = DistillTask(FixedScorer(scores), lr=1e-3, mode="plain", distill_loss="kl", distill_weight=2.0)
    p = np.exp(teacher) / np.exp(teacher).sum()
    q = np.exp(scores[0]) / np.exp(scores[0]).sum()
    expected = 2.0 * float((p * np.log(p / q)).sum())
    assert kl.loss([_group((POSITIVE, CANDIDATE, CANDIDATE), teacher)])["student"].item() == pytest.approx(
        expected, rel=1e-5
    )


def test_the_task_refuses_unknown_settings():
    with pytest.raises(RankkitError, match="mode"):
        DistillTask(FixedScorer([[0.0]]), lr=1e-3, mode="other")  # type: ignore[arg-type]
    with pytest.raises(RankkitError, match="loss"):
        DistillTask(FixedScorer([[0.0]]), lr=1e-3, distill_loss="mse")  # type: ignore[arg-type]
    with pytest.raises(RankkitError, match="discriminator"):
        DistillTask(FixedScorer([[0.0]]), lr=1e-3, mode="plain", discriminator=Discriminator())


def _query_knowledge() -> QueryKnowledge:
    candidates = [Candidate(f"d{i}", "bm25", i + 1, None, float(1 - i)) for i in range(6)]
    return QueryKnowledge(
        "q", "query", candidates, {f"d{i}": float(10 - i) for i in range(6)}, {"d0": 0.9, "d1": 0.6}, ["d4", "d5"]
    )


def test_contrastive_groups_mix_self_adversarial_and_hard_negatives_and_top_up():
    k = _query_knowledge()
    texts = {f"d{i}": f"text {i}" for i in range(6)}
    group = contrastive_group(k, texts, ["d3"], hard=2, self_adversarial=2, rng=np.random.default_rng(0))
    assert group.positive_id in {"d0", "d1"} and group.confidence == k.positives[group.positive_id]
    assert group.kinds == (POSITIVE, SELF_ADVERSARIAL, SELF_ADVERSARIAL, HARD, HARD)
    assert group.negative_ids[:2] == ("d3", "d3") and set(group.negative_ids[2:]) <= {"d4", "d5"}
    assert group.teacher_scores == tuple(k.teacher[d] for d in (group.positive_id, *group.negative_ids))
    assert group.source_ranks[1] == pytest.approx(4 / 6)
    topped = contrastive_group(k, texts, [], hard=2, self_adversarial=2, rng=np.random.default_rng(0))
    assert topped.kinds == (POSITIVE, HARD, HARD, HARD, HARD)


def test_plain_groups_put_the_teacher_top_first():
    k = _query_knowledge()
    texts = {f"d{i}": f"text {i}" for i in range(6)}
    group = plain_group(k, texts, 3, np.random.default_rng(0))
    assert group.positive_id == "d0" and len(set(group.negative_ids)) == 3 and "d0" not in group.negative_ids
    assert group.kinds == (POSITIVE, CANDIDATE, CANDIDATE, CANDIDATE)


def test_contrastive_groups_add_distillation_candidates_after_the_mined_negatives():
    k = _query_knowledge()
    texts = {f"d{i}": f"text {i}" for i in range(6)}
    group = contrastive_group(k, texts, ["d3"], hard=1, self_adversarial=1, rng=np.random.default_rng(0), candidates=2)
    assert group.kinds == (POSITIVE, SELF_ADVERSARIAL, HARD, CANDIDATE, CANDIDATE)
    mined = {group.positive_id, *group.negative_ids[:2]}
    assert not mined & set(group.negative_ids[2:])  # drawn from the other candidates only
    assert len(set(group.negative_ids[2:])) == 2
    assert group.teacher_scores == tuple(k.teacher[d] for d in (group.positive_id, *group.negative_ids))
    without = contrastive_group(k, texts, ["d3"], hard=1, self_adversarial=1, rng=np.random.default_rng(0))
    assert without.negative_ids == group.negative_ids[:2]  # the same draws, candidates appended


def test_candidates_enter_the_distillation_term_but_not_the_contrastive_one():
    scores = [[1.0, 0.0, 2.0, 0.5]]
    teacher = [2.0, 0.0, 0.0, 1.0]
    kinds = (POSITIVE, HARD, CANDIDATE, SELF_ADVERSARIAL)
    task = DistillTask(FixedScorer(scores), lr=1e-3, contrastive_weight=0.5)
    losses = task.loss([_group(kinds, teacher)])
    # contrastive over the positive, HARD and SELF_ADVERSARIAL columns only: -log(e^1 / (e^1 + e^0 + e^0.5))
    contrastive = math.log(math.e + 1 + math.exp(0.5)) - 1.0
    p = np.exp(teacher) / np.exp(teacher).sum()
    q = np.exp(scores[0]) / np.exp(scores[0]).sum()
    distill = float((p * np.log(p / q)).sum())  # over all four items, the candidate included
    assert task.log_record()["contrastive_loss"] == pytest.approx(contrastive, rel=1e-5)
    assert task.log_record()["distill_loss"] == pytest.approx(distill, rel=1e-5)
    assert losses["student"].item() == pytest.approx(0.5 * contrastive + distill, rel=1e-5)


def test_the_discriminator_sees_only_the_mined_negatives():
    scores = [[1.0, 0.0, 5.0, 1.0]]
    group = _group((POSITIVE, HARD, CANDIDATE, SELF_ADVERSARIAL), teacher=[1.0, 0.0, 5.0, 1.0], confidence=0.5)
    task = DistillTask(FixedScorer(scores), lr=1e-3, discriminator=_constant_discriminator(0.8))
    task.loss([group])
    e = math.e  # as with no candidate: weights 1.6 (hard) and 0.4 (self-adversarial)
    assert task.log_record()["contrastive_loss"] == pytest.approx(0.5 * (math.log(e + 1.6 + 0.4 * e) - 1.0), rel=1e-5)
    assert task.log_record()["weight_hard"] == pytest.approx(1.6)


def test_a_batch_with_candidates_in_different_places_is_refused():
    task = DistillTask(FixedScorer([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]), lr=1e-3)
    batch = [_group((POSITIVE, HARD, CANDIDATE), [0.0] * 3), _group((POSITIVE, CANDIDATE, HARD), [0.0] * 3)]
    with pytest.raises(RankkitError, match="candidates in different places"):
        task.loss(batch)
