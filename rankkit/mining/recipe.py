"""A mining run as one configuration: where candidates come from, which strategies, in which
order. `rankkit mine` is this recipe's options, and calls run_mining."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from rankkit.data.corpus import read_doc_texts
from rankkit.data.files import atomic_write
from rankkit.data.qrels import read_qrels
from rankkit.data.queries import read_queries
from rankkit.data.runs import read_run
from rankkit.errors import RankkitError
from rankkit.options import Output, option, same_option
from rankkit.retrieve.options import DenseQuery
from rankkit.train.config import Schedule
from rankkit.mining.candidates import Candidates, candidates_from_retriever, candidates_from_run, merge_candidates
from rankkit.data.collection import collection_files, required_files
from rankkit.mining.export import EXPORT_FORMATS, ExportFormat, export_minedset, export_path
from rankkit.mining.mine import MiningConfig, false_negative_rate, mine
from rankkit.mining.minedset import MinedSet
from rankkit.mining.pooling import with_pooling_provenance
from rankkit.mining.strategies import (AdaptiveThreshold, MarginFilter, RandomN, RankWindow, SelfAdversarial,
                                       SimANS, Strategy, TeacherDenoise, TopN)


DATA_HELP = ("Collection folder (collection.tsv, queries.tsv, qrels.txt) or BEIR folder (corpus.jsonl, "
             "queries.jsonl, qrels/SPLIT.tsv): its files stand in for the file options not given.")


@dataclass(frozen=True, kw_only=True)
class MiningRecipe(DenseQuery):
    """Strategies apply in this order: window, teacher denoise, adaptive threshold, margin,
    self-adversarial, then the count (top, random or simans)."""

    queries: str | None = option(None, "Queries file (TSV, TREC topics or BEIR queries.jsonl); default: --data's.")
    qrels: str | None = option(None, "Qrels: the labeled positives (only their queries are mined); default: "
                                     "--data's (--split's).")
    corpus: str | None = option(None, "Corpus file (texts for duplicate checks and training); default: --data's.")
    data: str | None = option(None, DATA_HELP)
    split: str | None = option(None, "BEIR folder (--data): the qrels split to mine, e.g. train (default test, "
                                     "else the only one).")
    output: str = same_option(Output, "output", help="MinedSet JSONL to write (stats beside it).")
    indexes: tuple[str, ...] = option((), "Index folder to mine from (repeatable).", flags=("--index", "-i"))
    runs: tuple[str, ...] = option((), "Existing TREC run to mine from (repeatable).", flags=("--run",))
    depth: int = option(200, "Candidates retrieved per query from each index.", low=1)
    min_rank: int = option(1, "Window: first rank kept.", low=1)
    max_rank: int = option(200, "Window: last rank kept.", low=1)
    count: int = option(8, "Negatives kept per query.", low=1)
    sampling: Literal["top", "random", "simans"] = option("top", "How the count is filled: top, random or simans.")
    simans_a: float = option(1.0, "SimANS: sharpness a in exp(-a (s_neg - s_pos - b)^2).", low=0)
    simans_b: float = option(0.0, "SimANS: offset b.")
    margin: float | None = option(None, "Drop candidates scoring within this margin of the positive.")
    relative_margin: bool = option(False, "Margin as a share of |positive score|.")
    score_field: Literal["score", "teacher_score"] = option("score", "Scores for margin and SimANS: score or "
                                                                     "teacher_score.")
    teacher: str | None = option(None, "Cross-encoder folder that scores candidates.")
    denoise_threshold: float | None = option(None, "RocketQA: drop teacher scores >= this.")
    adaptive_k: float | None = option(None, "ATSS: drop teacher scores > mean + k * std.")
    self_adversarial_run: str | None = option(None, "Run of an earlier checkpoint: keep what it ranks high.")
    self_adversarial_depth: int = option(50, "Self-adversarial: its top ranks that count as high.", low=1)
    full_qrels: str | None = option(None, "Complete judgments: report the false-negative rate.")
    pooling_run: str | None = option(None, "TREC run of the retriever whose pool was judged: record every "
                                           "document's rank and score in it as provenance (for CET's provenance "
                                           "selection model).")
    seed: int = same_option(Schedule, "seed")
    min_grade: int = option(1, "Grades at or above this are positives.")
    exports: tuple[ExportFormat, ...] = option(
        (), "Also write the MinedSet for another trainer (repeatable): st (sentence-transformers "
            "anchor/positive/negative_i), flagembedding or tevatron, as OUTPUT_STEM.FORMAT.jsonl.", flags=("--export",))

    def files(self) -> dict[str, str]:
        """The queries, qrels and corpus files: those given, else --data's; a missing one is refused."""
        paths = collection_files(self.data, self.split)
        return required_files(queries=self.queries or (paths and paths.queries),
                              qrels=self.qrels or (paths and paths.qrels), corpus=self.corpus or (paths and paths.corpus))

    def strategies(self) -> list[Strategy]:
        field = self.score_field
        if field not in ("score", "teacher_score"):
            raise RankkitError(f"unknown score field {field!r}. Fix: use score or teacher_score")
        needs_teacher = (self.denoise_threshold is not None or self.adaptive_k is not None
                         or field == "teacher_score")
        if needs_teacher and self.teacher is None:
            raise RankkitError("teacher-based strategies need scores from a teacher. Fix: pass --teacher MODEL")
        if not 1 <= self.min_rank <= self.max_rank:
            raise RankkitError(f"the rank window {self.min_rank}..{self.max_rank} is empty. "
                               "Fix: give 1 <= --min-rank <= --max-rank")
        if self.count < 1:
            raise RankkitError(f"count {self.count}: at least one negative per query is needed. Fix: pass --count 1 or more")
        steps: list[Strategy] = [RankWindow(self.min_rank, self.max_rank)]
        if self.denoise_threshold is not None:
            steps.append(TeacherDenoise(self.denoise_threshold))
        if self.adaptive_k is not None:
            steps.append(AdaptiveThreshold(self.adaptive_k))
        if self.margin is not None:
            steps.append(MarginFilter(self.margin, self.relative_margin, field))  # type: ignore[arg-type]
        if self.self_adversarial_run is not None:
            steps.append(SelfAdversarial.from_run(read_run(self.self_adversarial_run), self.self_adversarial_depth))
        samplers = {"top": lambda: TopN(self.count), "random": lambda: RandomN(self.count),
                    "simans": lambda: SimANS(self.count, self.simans_a, self.simans_b, field)}  # type: ignore[arg-type]
        if self.sampling not in samplers:
            raise RankkitError(f"unknown sampling {self.sampling!r}. Fix: use top, random or simans")
        steps.append(samplers[self.sampling]())
        return steps


def _candidates(recipe: MiningRecipe, queries: dict[str, str]) -> tuple[Candidates, dict]:
    from rankkit.retrieve import open_retriever

    if not recipe.indexes and not recipe.runs:
        raise RankkitError("no candidate source. Fix: pass --index FOLDER or --run RUN_FILE")
    if recipe.max_rank > recipe.depth and recipe.indexes:
        raise RankkitError(f"the window ends at rank {recipe.max_rank} but only {recipe.depth} candidates are "
                           f"retrieved. Fix: pass --depth {recipe.max_rank} or a smaller --max-rank")
    sources, encoders = [], {}
    for folder in recipe.indexes:
        retriever = open_retriever([folder], recipe)
        sources.append(candidates_from_retriever(retriever, queries, recipe.depth))
        if hasattr(retriever, "encoder"):
            encoders[retriever.name] = retriever.encoder
    sources += [candidates_from_run(read_run(path), Path(path).name) for path in recipe.runs]
    return merge_candidates(*sources), encoders


def run_mining(recipe: MiningRecipe) -> MinedSet:
    """Read the inputs, gather candidates, score them with the teacher if any, mine, report the
    false-negative rate when full qrels are given, and write the MinedSet to recipe.output."""
    strategies = recipe.strategies()
    unknown = sorted(set(recipe.exports) - set(EXPORT_FORMATS))
    if unknown:
        raise RankkitError(f"unknown export format {unknown[0]!r}. Fix: use one of {', '.join(EXPORT_FORMATS)}")
    files = recipe.files()
    qrels = read_qrels(files["qrels"])
    # only judged queries can be mined: the others (e.g. a BEIR folder's dev queries) are not retrieved
    queries = {qid: text for qid, text in read_queries(files["queries"]).items() if qid in qrels}
    candidates, encoders = _candidates(recipe, queries)
    needed = {c.docid for found in candidates.values() for c in found} | {d for j in qrels.values() for d in j}
    doc_texts = read_doc_texts(files["corpus"], docids=needed)
    positive_scores = None
    if encoders and len(recipe.indexes) == 1 and not recipe.runs:
        # a dense source scores positives exactly, even those it did not retrieve
        encoder = next(iter(encoders.values()))
        positive_scores = dense_positive_scores(encoder, queries, qrels, doc_texts, recipe.min_grade)
    positive_teacher = None
    if recipe.teacher is not None:
        from rankkit.encode.crossencoder import CrossEncoder
        from rankkit.mining.teacher import add_teacher_scores

        teacher = CrossEncoder(recipe.teacher, device=recipe.device, precision=recipe.precision)
        positive_teacher = add_teacher_scores(candidates, queries, qrels, doc_texts, teacher.score, recipe.min_grade)
    mined = mine(queries, qrels, candidates, strategies, MiningConfig(recipe.seed, recipe.min_grade),
                 doc_texts, positive_scores, positive_teacher)
    mined.config = {**asdict(recipe), **files, "strategies": mined.config["strategies"]}
    if recipe.full_qrels is not None:
        mined.stats["false_negative_rate"] = false_negative_rate(mined, read_qrels(recipe.full_qrels),
                                                                 recipe.min_grade)
    if recipe.pooling_run is not None:  # after the rate, which is per mining source
        mined = with_pooling_provenance(mined, read_run(recipe.pooling_run), Path(recipe.pooling_run).name)
    if recipe.exports:
        mined.stats["exports"] = [export_minedset(mined, doc_texts, fmt, export_path(recipe.output, fmt))
                                  for fmt in recipe.exports]
    mined.write(recipe.output)
    with atomic_write(Path(recipe.output).with_suffix(".stats.json")) as out:
        json.dump(mined.stats, out, indent=2)
    return mined


def dense_positive_scores(encoder, queries: dict[str, str], qrels: dict, doc_texts: dict[str, str],
                          min_grade: int) -> dict[str, float]:
    """Each query's best positive score under a bi-encoder (dot product of normalised embeddings)."""
    pairs = [(qid, d) for qid in queries for d, g in qrels.get(qid, {}).items() if g >= min_grade and d in doc_texts]
    if not pairs:
        return {}
    q_vectors = encoder.encode([queries[qid] for qid, _ in pairs], role="query")
    d_vectors = encoder.encode([doc_texts[d] for _, d in pairs])
    best: dict[str, float] = {}
    for (qid, _), score in zip(pairs, np.sum(q_vectors * d_vectors, axis=1)):
        best[qid] = max(best.get(qid, float("-inf")), float(score))
    return best
