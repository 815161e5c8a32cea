"""Opposite-label neighbours through the mining core: each training review is a query, the
reviews sharing its label are its "positives" (so the core never returns them as negatives), and
the candidates are its nearest reviews in embedding space from a FAISS index of the training
reviews. What the core keeps, the top `n` candidates, are the opposite-label reviews nearest to it:
the hard negatives the supervised contrastive term pushes away."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from rankkit.data.runs import Hit
from rankkit.index.dense import make_faiss_index
from rankkit.mining import MinedSet, TopN, candidates_from_run, mine

SOURCE = "faiss:train-reviews"


def mine_opposite_label(
    embeddings: np.ndarray, labels: Sequence[int], texts: Sequence[str], n: int, depth: int = 64, seed: int = 0
) -> MinedSet:
    """A MinedSet whose query i (qid str(i)) is review i and whose negatives are its n nearest
    opposite-label reviews among the `depth` nearest reviews (inner product of normalised
    embeddings); reviews whose text repeats a same-label review's are never negatives."""
    ids = [str(i) for i in range(len(texts))]
    same_label = {label: {ids[i]: 1 for i, other in enumerate(labels) if other == label} for label in set(labels)}
    qrels = {ids[i]: same_label[label] for i, label in enumerate(labels)}  # shared dicts: O(n) memory
    vectors = np.ascontiguousarray(embeddings, dtype=np.float32)
    scores, rows = make_faiss_index(vectors, "Flat", seed).search(vectors, min(depth, len(texts)))
    run = {
        ids[i]: [Hit(ids[row], score) for score, row in zip(score_row, row_ids) if row >= 0]
        for i, (score_row, row_ids) in enumerate(zip(scores.tolist(), rows.tolist()))
    }
    texts_by_id = dict(zip(ids, texts))
    return mine(texts_by_id, qrels, candidates_from_run(run, SOURCE), [TopN(n)], doc_texts=texts_by_id)


def negatives_by_review(mined: MinedSet, size: int) -> list[list[int]]:
    """For each of `size` reviews, the indices of its mined negatives (empty when none were found)."""
    found = [[] for _ in range(size)]
    for query in mined.queries:
        found[int(query.qid)] = [int(c.docid) for c in query.negatives]
    return found
