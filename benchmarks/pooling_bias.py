"""Pooling-bias benchmark for CET (issue 4): does correcting false negatives help?

On collections with complete judgments we simulate shallow pooling as MS MARCO has it: the
observed positives of a query are the relevant documents found in BM25's top-`pool` list, at
most `m` per query; every other document is unlabeled. Bi-encoders fine-tuned from MiniLM with
negatives from
  (a) BM25, (b) the dense retriever (naive), (c) dense + teacher denoising, (d) dense + CET
are tested on held-out query folds against the FULL judgments (nDCG@10, R@100), with a paired
t-test against (b). The false-negative rate of the negatives of (a) and (b) is reported too.

All four conditions use the same relevance model, pairwise softmax loss, steps and seeds; (d)
adds CET's weights with the light provenance selection model. (c)'s teacher is the fold's
condition-(a) model: it scores the dense candidates and those it scores at or above the positive
are dropped (RocketQA-style denoising with the only teacher these labels can train).

With `--ranker cross-encoder` the four are cross-encoders fine-tuned from `--model` (`rankkit
train reranker --loss pairwise`), read by reranking BM25's top `depth` of the held-out queries, and
(d) is CET as its reference runs it: a second cross-encoder as the selection model. As the
reference starts from a cross-encoder trained on MS MARCO, start from one that already ranks (a
few dozen queries do not teach a new head): e.g. the SciFact reranker of
benchmarks/scifact_reranker.py, trained on SciFact's train split, which none of these collections is.

    python benchmarks/pooling_bias.py --quick      # two small collections, a few minutes
    python benchmarks/pooling_bias.py              # every collection (about an hour of CPU)
    python benchmarks/pooling_bias.py --quick --ranker cross-encoder --debias-ratio 10 \
        --model work/scifact/reranker-scifact_reranker/model --precision auto
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from cet_conditions import train_condition  # type: ignore[import-not-found]
from common import save_result  # type: ignore[import-not-found]

from rankkit.data import collection, read_doc_texts, read_qrels, read_queries, shared_data_root
from rankkit.data.qrels import Qrels
from rankkit.data.runs import Run
from rankkit.encode.biencoder import BiEncoder
from rankkit.encode.crossencoder import CrossEncoder
from rankkit.eval import evaluate, paired_compare, resolve_measures
from rankkit.eval.folds import kfold_queries
from rankkit.index.bm25 import build_bm25_index
from rankkit.index.dense import DenseIndex, build_dense_index
from rankkit.mining import (
    MarginFilter,
    MinedSet,
    RankWindow,
    TopN,
    candidates_from_run,
    false_negative_rate,
    mine,
    with_pooling_provenance,
)
from rankkit.mining.mine import MiningConfig
from rankkit.mining.teacher import add_teacher_scores
from rankkit.retrieve.bm25 import BM25Retriever
from rankkit.retrieve.dense import DenseRetriever
from rankkit.retrieve.rerank import rerank_run
from rankkit.train.config import TrainConfig
from rankkit.train.suspects import load_cet_models

FULL = ("adi", "medline", "cranfield", "cisi", "vaswani", "dl19")
QUICK = ("adi", "medline")
NOTES = [
    "Labels: relevant documents in BM25's top `pool`, at most `m` per query; the rest unlabeled.",
    "Every system is tested on held-out queries (k-fold by query) against the full judgments.",
    "p vs b: two-sided paired t-test against (b) dense negatives, over the held-out queries.",
    "(c) teacher: the fold's (a) model; dense candidates it scores >= the positive are dropped.",
    "(d) CET: relevance bi-encoder + provenance selection model (an MLP over each document's rank and score "
    "in BM25's top-`depth`, the pooling retriever: with_pooling_provenance), debias ratio T and selection lr "
    "as in the parameters; same negatives as (b).",
]
CROSS_ENCODER_NOTES = [
    "Labels: relevant documents in BM25's top `pool`, at most `m` per query; the rest unlabeled.",
    "Every system is tested on held-out queries (k-fold by query) against the full judgments; the "
    "cross-encoders rerank BM25's top `depth` (R@100 is BM25's for each of them).",
    "p vs b: two-sided paired t-test against (b) dense negatives, over the held-out queries.",
    "(a)-(d): cross-encoders fine-tuned from --model (the 'start' row: it reranks BM25's top `depth` "
    "untouched), pairwise softmax loss (rankkit train reranker --loss pairwise), pairs cut at --max-length tokens.",
    "(c) teacher: the fold's (a) cross-encoder; dense candidates it scores >= the positive are dropped.",
    "(d) CET as its reference runs it: relevance and selection models both cross-encoders, each pair's loss "
    "weighted by 1 + exp(s / T) of the other model's score of the negative; same negatives as (b).",
]
CONDITIONS = ("a: bm25 negatives", "b: dense negatives", "c: dense + denoise", "d: dense + CET")


def shallow_labels(bm25_run: Run, full: Qrels, pool: int, m: int, min_grade: int) -> Qrels:
    """Observed positives: relevant documents in BM25's top `pool`, the best-ranked m per query."""
    observed: Qrels = {}
    for qid, hits in bm25_run.items():
        found = [h.docid for h in hits[:pool] if full.get(qid, {}).get(h.docid, 0) >= min_grade]
        if found:
            observed[qid] = {d: full[qid][d] for d in found[:m]}
    return observed


def dense_run_of(
    model: str | Path, corpus: Path, queries: dict[str, str], work: Path, depth: int, max_length: int
) -> Run:
    encoder = BiEncoder(model, max_length=max_length)
    folder = work / "dense-index"
    build_dense_index(corpus, folder, encoder, overwrite=True)
    run = DenseRetriever(DenseIndex(folder), encoder).batch_search(queries, depth)
    shutil.rmtree(folder, ignore_errors=True)
    return run


def teacher_of(model_dir: Path, ranker: str, max_length: int):
    """The (query, passage) scoring function of a trained condition-(a) model."""
    if ranker == "cross-encoder":
        return CrossEncoder(model_dir, max_length=max_length).score
    encoder = BiEncoder(model_dir, max_length=max_length)

    def score(pairs):
        return (encoder.encode([q for q, _ in pairs]) * encoder.encode([p for _, p in pairs])).sum(axis=1)

    return score


def cet_weights(
    name: str,
    fold: int,
    cet_folder: Path,
    mined: MinedSet,
    doc_texts: dict[str, str],
    full: Qrels,
    min_grade: int,
) -> dict:
    """The weights CET's trained selection model gives the relevance model's pairs, for the
    negatives that are in fact relevant (false negatives) and the rest: CET should weigh the
    former less."""
    _, selection, temperature = load_cet_models(cet_folder, mined)
    by_kind: dict[bool, list[float]] = {True: [], False: []}
    for q in mined.queries:
        docids = [c.docid for c in q.negatives]
        scores = selection.score_documents(q.qid, [q.query] * len(docids), docids, [doc_texts[d] for d in docids])
        for docid, weight in zip(docids, 1.0 + np.exp(scores / temperature)):
            by_kind[full.get(q.qid, {}).get(docid, 0) >= min_grade].append(float(weight))
    every = by_kind[True] + by_kind[False]
    return {
        "collection": name,
        "fold": fold,
        "false negatives": len(by_kind[True]),
        "true negatives": len(by_kind[False]),
        "mean weight, false negatives": round(float(np.mean(by_kind[True])), 3) if by_kind[True] else None,
        "mean weight, true negatives": round(float(np.mean(by_kind[False])), 3) if by_kind[False] else None,
        "min weight": round(min(every), 3),
        "max weight": round(max(every), 3),
    }


def run_collection(name: str, args: argparse.Namespace, work: Path) -> tuple[list[dict], list[dict], list[dict], dict]:
    started, cpu_started = time.time(), time.process_time()
    paths = collection(shared_data_root() / name)
    queries, full = read_queries(paths.queries), read_qrels(paths.qrels)
    min_grade = 2 if name == "dl19" else 1  # DL convention: grade >= 2 is relevant for binary measures
    doc_texts = read_doc_texts(paths.corpus)
    judged = sorted(q for q in queries if any(g >= min_grade for g in full.get(q, {}).values()))
    queries = {q: queries[q] for q in judged}
    bm25_dir = work / f"{name}-bm25"
    build_bm25_index(paths.corpus, bm25_dir, overwrite=True)
    bm25_run = BM25Retriever(bm25_dir).batch_search(queries, args.depth)
    dense_run = dense_run_of("default", paths.corpus, queries, work, args.depth, args.max_length)
    observed = shallow_labels(bm25_run, full, args.pool, args.m, min_grade)
    measures = resolve_measures(None, ["nDCG@10", f"R(rel={min_grade})@100"])
    cross = args.ranker == "cross-encoder"
    baselines = ("BM25", "MiniLM untrained", *(["start (cross-encoder)"] if cross else []))
    per_condition_runs: dict[str, Run] = {c: {} for c in (*baselines, *CONDITIONS)}
    fn_rows, weight_rows = [], []
    for fold, (train_q, test_q) in enumerate(kfold_queries(judged, args.folds, args.seed)):
        train_queries = {q: queries[q] for q in train_q if q in observed}
        test_queries = {q: queries[q] for q in test_q}
        window = [RankWindow(1, args.window), TopN(args.count)]
        mining = MiningConfig(seed=args.seed, min_grade=1)
        mined_a = mine(train_queries, observed, candidates_from_run(bm25_run, "bm25"), window, mining, doc_texts)
        mined_b = mine(train_queries, observed, candidates_from_run(dense_run, "dense"), window, mining, doc_texts)
        # (d): (b)'s negatives; its selection model sees where each stood in BM25's ranking, the pool
        mined_d = with_pooling_provenance(mined_b, bm25_run, "bm25")
        for label, mined in (("a: bm25", mined_a), ("b: dense", mined_b)):
            rates = false_negative_rate(mined, full, min_grade)
            fn_rows.append(
                {
                    "collection": name,
                    "fold": fold,
                    "negatives": label,
                    **{band: round(v, 4) for band, v in next(iter(rates.values())).items()},
                }
            )

        def train(mined: MinedSet, tag: str, cet: bool = False) -> Path:
            config = TrainConfig(
                output=str(work / f"{name}-{fold}-{tag}"),
                model=args.model,
                epochs=args.epochs,
                batch_size=args.batch_size,
                negatives=args.negatives,
                lr=args.lr,
                seed=args.seed,
                max_length=args.max_length,
                precision=args.precision,
                overwrite=True,
            )
            return train_condition(
                mined,
                doc_texts,
                config,
                ranker=args.ranker,
                cet=cet,
                debias_ratio=args.debias_ratio,
                selection_lr=args.selection_lr,
                head_lr=args.head_lr,
            )

        model_a = train(mined_a, "a")
        candidates_c = candidates_from_run(dense_run, "dense")
        teacher_best = add_teacher_scores(
            {q: candidates_c[q] for q in train_queries},
            train_queries,
            observed,
            doc_texts,
            teacher_of(model_a, args.ranker, args.max_length),
        )
        mined_c = mine(
            train_queries,
            observed,
            candidates_c,
            [RankWindow(1, args.window), MarginFilter(0.0, field="teacher_score"), TopN(args.count)],
            mining,
            doc_texts,
            positive_teacher_scores=teacher_best,
        )
        models = {
            CONDITIONS[0]: model_a,
            CONDITIONS[1]: train(mined_b, "b"),
            CONDITIONS[2]: train(mined_c, "c"),
            CONDITIONS[3]: train(mined_d, "d", cet=True),
        }
        weight_rows.append(cet_weights(name, fold, models[CONDITIONS[3]].parent, mined_d, doc_texts, full, min_grade))
        per_condition_runs["BM25"].update({q: bm25_run[q] for q in test_queries})
        per_condition_runs["MiniLM untrained"].update({q: dense_run[q] for q in test_queries})
        if cross:
            models = {"start (cross-encoder)": Path(args.model), **models}
        for condition, model_dir in models.items():
            if cross:
                model = CrossEncoder(model_dir, max_length=args.max_length, precision=args.precision)
                pool = {q: bm25_run[q] for q in test_queries}
                per_condition_runs[condition].update(rerank_run(pool, test_queries, doc_texts, model, args.depth))
            else:
                per_condition_runs[condition].update(
                    dense_run_of(model_dir, paths.corpus, test_queries, work, 100, args.max_length)
                )
        print(f"{name} fold {fold}: done", flush=True)
    evaluations = {c: evaluate(run, {q: full[q] for q in run}, measures) for c, run in per_condition_runs.items()}
    rows = []
    baseline = evaluations[CONDITIONS[1]]
    for condition, ev in evaluations.items():
        row = {"collection": name, "system": condition, "queries": len(ev.per_query[ev.measures[0]])}
        for m in ev.measures:
            row[m] = round(ev.aggregate[m], 4)
        for m in ev.measures:
            if condition != CONDITIONS[1]:
                p = paired_compare(m, CONDITIONS[1], baseline, condition, ev).p_value
                row[f"p vs b, {m}"] = None if np.isnan(p) else round(p, 4)
        rows.append(row)
    info = {
        "collection": name,
        "queries": len(judged),
        "with observed positive": len(observed),
        "documents": len(doc_texts),
        "wall s": round(time.time() - started),
        "CPU s": round(time.process_time() - cpu_started),
    }
    return rows, fn_rows, weight_rows, info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}, one epoch")
    parser.add_argument("--collections", nargs="*", default=None)
    parser.add_argument("--pool", type=int, default=10, help="BM25 pool depth that the labels come from")
    parser.add_argument("--m", type=int, default=1, help="observed positives per query (1 mimics MS MARCO)")
    parser.add_argument("--depth", type=int, default=100, help="candidates retrieved per query")
    parser.add_argument("--window", type=int, default=30, help="negatives come from ranks 1..window")
    parser.add_argument("--count", type=int, default=10, help="negatives kept per query in the MinedSet")
    parser.add_argument("--negatives", type=int, default=3, help="negatives per query per step")
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument(
        "--batch-size", type=int, default=4, help="queries per step (small: more updates per CPU-second)"
    )
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--max-length", type=int, default=128, help="token limit for training and encoding")
    # T = 2, the default: the relevance model's weights, 1 + exp(s_sel / T), spread over
    # [1, ~10] once the provenance MLP's scores spread over a few units. The selection model's own
    # weights come from the bi-encoder's scores (cosine / 0.05, up to 20): up to e^10, which only
    # makes it learn mostly from the pairs the relevance model finds hardest.
    parser.add_argument("--debias-ratio", type=float, default=2.0)
    parser.add_argument(
        "--selection-lr",
        type=float,
        default=5e-2,
        help="the provenance MLP's learning rate (it must move within a few dozen steps)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--ranker",
        choices=("bi-encoder", "cross-encoder"),
        default="bi-encoder",
        help="what the four conditions train (cross-encoder: CET's selection model is one too)",
    )
    parser.add_argument(
        "--model", default="default", help="starting checkpoint (cross-encoders: best one with a trained head)"
    )
    parser.add_argument("--head-lr", type=float, default=None, help="cross-encoders: the scoring head's rate")
    parser.add_argument("--precision", default="fp32", help="training and scoring precision (auto: bf16 where native)")
    parser.add_argument("--name", default=None, help="results name (default pooling_bias[_quick][_cross_encoder])")
    args = parser.parse_args()
    if args.quick:
        args.epochs = 1
    names = args.collections or (QUICK if args.quick else FULL)
    torch.set_num_threads(2)
    started, cpu_started = time.time(), time.process_time()
    rows, fn_rows, weight_rows, infos = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="rankkit-pooling-") as tmp:
        for done, name in enumerate(names, 1):
            collection_rows, collection_fn, collection_weights, info = run_collection(name, args, Path(tmp))
            rows += collection_rows
            fn_rows += collection_fn
            weight_rows += collection_weights
            infos.append(info)
            # saved after every collection: a run stopped part-way keeps what it finished
            params = {
                **vars(args),
                "cpu_seconds": round(time.process_time() - cpu_started, 1),
                "collections done": f"{done} of {len(names)}",
            }
            suffix = "_cross_encoder" if args.ranker == "cross-encoder" else ""
            save_result(
                args.name or ("pooling_bias_quick" if args.quick else "pooling_bias") + suffix,
                rows,
                title="Pooling bias: negatives from BM25 vs dense, naive vs denoised vs CET "
                "(held-out folds, full qrels)",
                params=params,
                started=started,
                extra_tables={
                    "False-negative rate of the mined negatives (full qrels)": fn_rows,
                    "CET: the trained selection model's pair weights, false vs true negatives "
                    "(full qrels)": weight_rows,
                    "Collections": infos,
                },
                notes=CROSS_ENCODER_NOTES if args.ranker == "cross-encoder" else NOTES,
            )


if __name__ == "__main__":
    main()
