"""Carrying out a MiningRecipe: read the inputs, gather candidates, score them with a teacher,
mine, and write the MinedSet with its statistics (and exports)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from rankkit.data.corpus import read_doc_texts
from rankkit.data.files import atomic_write
from rankkit.data.qrels import read_qrels
from rankkit.data.queries import read_queries
from rankkit.data.runs import read_run
from rankkit.errors import RankkitError
from rankkit.mining.candidates import Candidates, candidates_from_retriever, candidates_from_run, merge_candidates
from rankkit.mining.export import EXPORT_FORMATS, export_minedset, export_path
from rankkit.mining.mine import MiningConfig, false_negative_rate, mine
from rankkit.mining.minedset import MinedSet
from rankkit.mining.pooling import with_pooling_provenance
from rankkit.mining.recipe import MiningRecipe
from rankkit.mining.strategies import (
    AdaptiveThreshold,
    MarginFilter,
    RandomN,
    RankWindow,
    SelfAdversarial,
    SimANS,
    Strategy,
    TeacherDenoise,
    TopN,
)


def recipe_strategies(recipe: MiningRecipe) -> list[Strategy]:
    """The recipe's strategies in their order of application, its contradictions refused."""
    field = recipe.score_field
    if field not in ("score", "teacher_score"):
        raise RankkitError(f"unknown score field {field!r}. Fix: use score or teacher_score")
    needs_teacher = recipe.denoise_threshold is not None or recipe.adaptive_k is not None or field == "teacher_score"
    if needs_teacher and recipe.teacher is None:
        raise RankkitError("teacher-based strategies need scores from a teacher. Fix: pass --teacher MODEL")
    if not 1 <= recipe.min_rank <= recipe.max_rank:
        raise RankkitError(
            f"the rank window {recipe.min_rank}..{recipe.max_rank} is empty. Fix: give 1 <= --min-rank <= --max-rank"
        )
    if recipe.count < 1:
        raise RankkitError(
            f"count {recipe.count}: at least one negative per query is needed. Fix: pass --count 1 or more"
        )
    steps: list[Strategy] = [RankWindow(recipe.min_rank, recipe.max_rank)]
    if recipe.denoise_threshold is not None:
        steps.append(TeacherDenoise(recipe.denoise_threshold))
    if recipe.adaptive_k is not None:
        steps.append(AdaptiveThreshold(recipe.adaptive_k))
    if recipe.margin is not None:
        steps.append(MarginFilter(recipe.margin, recipe.relative_margin, field))  # type: ignore[arg-type]
    if recipe.self_adversarial_run is not None:
        steps.append(SelfAdversarial.from_run(read_run(recipe.self_adversarial_run), recipe.self_adversarial_depth))
    samplers = {
        "top": lambda: TopN(recipe.count),
        "random": lambda: RandomN(recipe.count),
        "simans": lambda: SimANS(recipe.count, recipe.simans_a, recipe.simans_b, field),
    }  # type: ignore[arg-type]
    if recipe.sampling not in samplers:
        raise RankkitError(f"unknown sampling {recipe.sampling!r}. Fix: use top, random or simans")
    steps.append(samplers[recipe.sampling]())
    return steps


def _candidates(recipe: MiningRecipe, queries: dict[str, str]) -> tuple[Candidates, dict]:
    from rankkit.retrieve import open_retriever

    if not recipe.indexes and not recipe.runs:
        raise RankkitError("no candidate source. Fix: pass --index FOLDER or --run RUN_FILE")
    if recipe.max_rank > recipe.depth and recipe.indexes:
        raise RankkitError(
            f"the window ends at rank {recipe.max_rank} but only {recipe.depth} candidates are "
            f"retrieved. Fix: pass --depth {recipe.max_rank} or a smaller --max-rank"
        )
    sources, scorers = [], []
    for folder in recipe.indexes:
        retriever = open_retriever([folder], recipe, recipe.bm25)
        sources.append(candidates_from_retriever(retriever, queries, recipe.depth))
        if hasattr(retriever, "score_pairs"):  # a model-encoded index scores any pair as its search does
            scorers.append(retriever)
    sources += [candidates_from_run(read_run(path), Path(path).name) for path in recipe.runs]
    return merge_candidates(*sources), scorers


def run_mining(recipe: MiningRecipe) -> MinedSet:
    """Read the inputs, gather candidates, score them with the teacher if any, mine, report the
    false-negative rate when full qrels are given, and write the MinedSet to recipe.output."""
    strategies = recipe_strategies(recipe)
    unknown = sorted(set(recipe.exports) - set(EXPORT_FORMATS))
    if unknown:
        raise RankkitError(f"unknown export format {unknown[0]!r}. Fix: use one of {', '.join(EXPORT_FORMATS)}")
    files = recipe.files()
    qrels = read_qrels(files["qrels"])
    # only judged queries can be mined: the others (e.g. a BEIR folder's dev queries) are not retrieved
    queries = {qid: text for qid, text in read_queries(files["queries"]).items() if qid in qrels}
    candidates, scorers = _candidates(recipe, queries)
    needed = {c.docid for found in candidates.values() for c in found} | {d for j in qrels.values() for d in j}
    doc_texts = read_doc_texts(files["corpus"], docids=needed)
    positive_scores = None
    if scorers and len(recipe.indexes) == 1 and not recipe.runs:
        # a dense or SPLADE source scores positives exactly, even those it did not retrieve
        positive_scores = best_positive_scores(scorers[0], queries, qrels, doc_texts, recipe.min_grade)
    positive_teacher = None
    if recipe.teacher is not None:
        from rankkit.encode.crossencoder import CrossEncoder
        from rankkit.mining.teacher import add_teacher_scores

        teacher = CrossEncoder(recipe.teacher, device=recipe.device, precision=recipe.precision, inference=recipe)
        positive_teacher = add_teacher_scores(candidates, queries, qrels, doc_texts, teacher.score, recipe.min_grade)
    mined = mine(
        queries,
        qrels,
        candidates,
        strategies,
        MiningConfig(recipe.seed, recipe.min_grade),
        doc_texts,
        positive_scores,
        positive_teacher,
    )
    mined.config = {**asdict(recipe), **files, "strategies": mined.config["strategies"]}
    if recipe.full_qrels is not None:
        mined.stats["false_negative_rate"] = false_negative_rate(mined, read_qrels(recipe.full_qrels), recipe.min_grade)
    if recipe.pooling_run is not None:  # after the rate, which is per mining source
        mined = with_pooling_provenance(mined, read_run(recipe.pooling_run), Path(recipe.pooling_run).name)
    if recipe.exports:
        mined.stats["exports"] = [
            export_minedset(mined, doc_texts, fmt, export_path(recipe.output, fmt)) for fmt in recipe.exports
        ]
    mined.write(recipe.output)
    with atomic_write(Path(recipe.output).with_suffix(".stats.json")) as out:
        json.dump(mined.stats, out, indent=2)
    return mined


def best_positive_scores(
    scorer, queries: dict[str, str], qrels: dict, doc_texts: dict[str, str], min_grade: int
) -> dict[str, float]:
    """Each query's best positive score under a retriever's own scoring (`score_pairs`: a dense
    index's dot product, a SPLADE index's impact product)."""
    pairs = [(qid, d) for qid in queries for d, g in qrels.get(qid, {}).items() if g >= min_grade and d in doc_texts]
    if not pairs:
        return {}
    scores = scorer.score_pairs([queries[qid] for qid, _ in pairs], [doc_texts[d] for _, d in pairs])
    best: dict[str, float] = {}
    for (qid, _), score in zip(pairs, scores):
        best[qid] = max(best.get(qid, float("-inf")), float(score))
    return best
