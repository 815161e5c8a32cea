"""A label-free dev criterion for distillation: how closely the student ranks held-out training
queries' candidates as the teacher does. It reads no qrels, so rounds, learning rates or loss
settings can be chosen on it (`rankkit distill --holdout-queries N`) without looking at a test figure."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from rankkit.train.losses import listwise_kl_loss


def teacher_agreement(
    student: Mapping[str, np.ndarray], teacher: Mapping[str, np.ndarray], temperature: float = 1.0, cutoff: int = 10
) -> dict[str, float]:
    """Mean over queries of the listwise T^2 * KL(softmax(teacher / T) || softmax(student / T)) (lower
    is closer; what the KL distillation term minimises) and of the share of the teacher's top
    `cutoff` candidates that are also in the student's top `cutoff` (higher is closer).

    `student` and `teacher` map each qid to scores of the same candidates in the same order."""
    kl, overlap = [], []
    for qid, teacher_scores in teacher.items():
        t, s = np.asarray(teacher_scores, dtype=np.float64), np.asarray(student[qid], dtype=np.float64)
        kl.append(float(listwise_kl_loss(torch.from_numpy(s)[None], torch.from_numpy(t)[None], temperature)))
        k = min(cutoff, len(t))
        top_t, top_s = np.argsort(-t, kind="stable")[:k], np.argsort(-s, kind="stable")[:k]
        overlap.append(len(set(top_t) & set(top_s)) / k)
    return {"teacher_kl": float(np.mean(kl)), f"top{cutoff}_overlap": float(np.mean(overlap)), "queries": len(kl)}


__all__ = ["teacher_agreement"]
