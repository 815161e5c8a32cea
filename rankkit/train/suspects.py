"""The false-negative report of CET: every mined negative's estimated probability of being a
false negative (relevant, never judged), the top suspects as TSV for annotation, and, where full
judgments exist, how many of those suspects are in fact relevant."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from rankkit.data.files import atomic_write
from rankkit.data.qrels import Qrels
from rankkit.encode.biencoder import BiEncoder
from rankkit.encode.crossencoder import CrossEncoder
from rankkit.errors import RankkitError
from rankkit.mining.minedset import MinedSet
from rankkit.train.cet import CET_FILE, false_negative_probability
from rankkit.train.scorers import BiEncoderScorer, CrossEncoderScorer, GroupScorer
from rankkit.train.selection import ProvenanceScorer


@dataclass(frozen=True)
class Suspect:
    qid: str
    docid: str
    probability: float
    relevance_score: float
    selection_score: float
    source: str
    rank: int | None


def load_cet_models(
    folder: str | Path, mined: MinedSet, device: str | None = None
) -> tuple[GroupScorer, GroupScorer, float]:
    """The relevance and selection scorers and T of a CET model folder (from `rankkit train cet`)."""
    folder = Path(folder)
    if not (folder / CET_FILE).is_file():
        raise RankkitError(
            f"{folder}: no {CET_FILE}, so not a CET model folder. "
            "Fix: pass the model/ folder that `rankkit train cet` wrote"
        )
    meta = json.loads((folder / CET_FILE).read_text())
    if meta["relevance"] == "cross-encoder":
        relevance: GroupScorer = CrossEncoderScorer(CrossEncoder(folder / "relevance", device=device))
    else:
        relevance = BiEncoderScorer(BiEncoder(folder / "relevance", device=device), meta["temperature"])
    if meta["selection"] == "provenance":
        selection: GroupScorer = ProvenanceScorer.load(folder / "selection", mined)
    else:
        selection = CrossEncoderScorer(CrossEncoder(folder / "selection", device=device))
    return relevance, selection, float(meta["debias_ratio"])


def score_suspects(
    mined: MinedSet, doc_texts: Mapping[str, str], relevance: GroupScorer, selection: GroupScorer, temperature: float
) -> list[Suspect]:
    """Every mined negative with its false-negative probability, most suspect first."""
    suspects = []
    for q in mined.queries:
        if not q.negatives:  # nothing to suspect (training leaves such queries out too)
            continue
        docids = [c.docid for c in q.negatives]
        texts = [doc_texts[d] for d in docids]
        queries = [q.query] * len(docids)
        rel = relevance.score_documents(q.qid, queries, docids, texts)
        sel = selection.score_documents(q.qid, queries, docids, texts)
        probability = false_negative_probability(rel, sel, temperature)
        suspects += [
            Suspect(q.qid, c.docid, float(p), float(r), float(s), c.source, c.rank)
            for c, p, r, s in zip(q.negatives, probability, rel, sel)
        ]
    return sorted(suspects, key=lambda s: (-s.probability, s.qid, s.docid))


def suspect_precision(suspects: Sequence[Suspect], full_qrels: Qrels, min_grade: int = 1) -> float:
    """Share of the given suspects that the full judgments call relevant."""
    if not suspects:
        return 0.0
    return sum(full_qrels.get(s.qid, {}).get(s.docid, 0) >= min_grade for s in suspects) / len(suspects)


def write_suspects(
    suspects: Sequence[Suspect],
    path: str | Path,
    queries: Mapping[str, str],
    doc_texts: Mapping[str, str],
    full_qrels: Qrels | None = None,
) -> None:
    """TSV for annotation: qid, query, docid, passage, probability, scores, provenance (and the
    full-qrels grade when known)."""
    columns = [
        "qid",
        "query",
        "docid",
        "passage",
        "fn_probability",
        "relevance_score",
        "selection_score",
        "source",
        "rank",
    ] + (["full_qrels_grade"] if full_qrels is not None else [])
    with atomic_write(path) as out:
        out.write("\t".join(columns) + "\n")
        for s in suspects:
            row = [
                s.qid,
                queries[s.qid],
                s.docid,
                doc_texts[s.docid],
                f"{s.probability:.4f}",
                f"{s.relevance_score:.4f}",
                f"{s.selection_score:.4f}",
                s.source,
                str(s.rank),
            ]
            if full_qrels is not None:
                row.append(str(full_qrels.get(s.qid, {}).get(s.docid, "")))
            out.write("\t".join(" ".join(field.split()) for field in row) + "\n")
