"""A label-free dev criterion for distillation: how closely the student ranks held-out training
queries' candidates as the teacher does. It reads no qrels, so rounds, learning rates or loss
settings can be chosen on it (`rankkit distill --dev-queries N`) without looking at a test figure."""

from __future__ import annotations

from typing import Mapping

import numpy as np


def _log_softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max()
    return shifted - np.log(np.exp(shifted).sum())


def teacher_agreement(student: Mapping[str, np.ndarray], teacher: Mapping[str, np.ndarray],
                      temperature: float = 1.0, cutoff: int = 10) -> dict[str, float]:
    """Mean over queries of the listwise T^2 * KL(softmax(teacher / T) || softmax(student / T)) (lower
    is closer; what the KL distillation term minimises) and of the share of the teacher's top
    `cutoff` candidates that are also in the student's top `cutoff` (higher is closer).

    `student` and `teacher` map each qid to scores of the same candidates in the same order."""
    kl, overlap = [], []
    for qid, teacher_scores in teacher.items():
        t, s = np.asarray(teacher_scores, dtype=np.float64), np.asarray(student[qid], dtype=np.float64)
        log_t, log_s = _log_softmax(t / temperature), _log_softmax(s / temperature)
        kl.append(temperature ** 2 * float(np.sum(np.exp(log_t) * (log_t - log_s))))
        k = min(cutoff, len(t))
        top_t, top_s = np.argsort(-t, kind="stable")[:k], np.argsort(-s, kind="stable")[:k]
        overlap.append(len(set(top_t) & set(top_s)) / k)
    return {"teacher_kl": float(np.mean(kl)), f"top{cutoff}_overlap": float(np.mean(overlap)), "queries": len(kl)}


__all__ = ["teacher_agreement"]
