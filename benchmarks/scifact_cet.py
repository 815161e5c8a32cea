"""CET and denoising on natural shallow labels (issue 9): SciFact train -> dev.

SciFact labels only the abstracts each claim cites (1.1 per query, no judged non-relevant ones), so
relevant but unlabelled abstracts can sit among mined negatives. Three bi-encoders are trained from
MiniLM on the train split with the same loss (pairwise softmax, CET's loss without its weights),
schedule, negatives per step and seed:

  naive    dense negatives: untrained MiniLM's top-100 of each train query, ranks 1..`--window`,
           the top `--count` after labelled positives and their duplicates are dropped;
  denoise  the same candidates less those a teacher scores at or above the query's positive
           (RocketQA-style). Teacher: `--teacher`, by default the best bi-encoder of
           benchmarks/scifact_finetune.py (trained on the train split only);
  CET      naive's negatives, relevance bi-encoder + provenance selection model over each
           document's rank and score in BM25's top 100 (the pooling retriever).

With `--ranker cross-encoder`, CET as its reference runs it: the three are cross-encoders from
MiniLM with a new scoring head (pairwise softmax, `rankkit train reranker --loss pairwise`), and
CET's selection model is a second cross-encoder trained beside the relevance one, each pair's loss
weighted by the other model's score of the negative.

Each is read on the 100 dev queries (never mined or trained on): bi-encoders retrieve from the full
corpus, cross-encoders rerank BM25's top 100; nDCG@10 and R@100 with a two-sided paired t-test
against naive. Without complete judgments the false negatives are unknown; the table of CET's
weights compares the negatives the teacher flags with the rest, as a check of agreement between
the two corrections.

    .venv/bin/python benchmarks/scifact_cet.py --teacher work/scifact/models/CONFIG/model
    .venv/bin/python benchmarks/scifact_cet.py --teacher work/scifact/models/CONFIG/model \
        --ranker cross-encoder --lr 1e-4 --head-lr 1e-3 --epochs 2 --negatives 3 --batch-size 8 \
        --debias-ratio 10 --precision auto
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
from cet_conditions import train_condition  # type: ignore[import-not-found]
from common import machine_facts, save_result  # type: ignore[import-not-found]
from scifact_finetune import CACHE, MEASURES, TRAIN_PRECISION, dense_search, scifact_setup  # type: ignore[import-not-found]

from rankkit.data.corpus import read_doc_texts
from rankkit.data.qrels import read_qrels
from rankkit.data.runs import Run, read_run, write_run
from rankkit.distill.teacher import dot_product_scores
from rankkit.encode.biencoder import BiEncoder
from rankkit.encode.crossencoder import CrossEncoder
from rankkit.eval import evaluate, paired_compare, resolve_measures
from rankkit.mining import MarginFilter, MinedSet, RankWindow, TopN, candidates_from_run, mine, with_pooling_provenance
from rankkit.mining.candidates import Candidates
from rankkit.mining.mine import MiningConfig
from rankkit.retrieve.rerank import rerank_run
from rankkit.train.config import TrainConfig
from rankkit.train.suspects import load_cet_models

CONDITIONS = ("naive", "denoise", "CET")


def teacher_scores(
    teacher: str, candidates: Candidates, queries: dict[str, str], qrels, doc_texts: dict[str, str]
) -> dict[str, float]:
    """Set each candidate's teacher_score (the teacher's cosine); returns each query's best
    positive score. Every document is encoded once."""
    ids = {qid: [c.docid for c in candidates[qid]] + sorted(qrels[qid]) for qid in queries if qid in candidates}
    scores = dot_product_scores(BiEncoder(teacher, precision="bf16"), queries, ids, doc_texts)
    best = {}
    for qid, found in candidates.items():
        if qid not in ids:
            continue
        for candidate, score in zip(found, scores[qid]):
            candidate.teacher_score = float(score)
        best[qid] = float(scores[qid][len(found) :].max())
    return best


def selection_scores(cet_folder: Path, mined: MinedSet, doc_texts: dict[str, str]) -> dict[tuple[str, str], float]:
    """CET's trained selection model's score of every negative of the MinedSet."""
    _, selection, _ = load_cet_models(cet_folder, mined)
    scores = {}
    for q in mined.queries:
        docids = [n.docid for n in q.negatives]
        found = selection.score_documents(q.qid, [q.query] * len(docids), docids, [doc_texts[d] for d in docids])
        scores.update({(q.qid, d): float(score) for d, score in zip(docids, found)})
    return scores


def cet_weight_rows(selection: dict[tuple[str, str], float], mined_denoised: MinedSet, ratio: float) -> list[dict]:
    """CET's pair weights 1 + exp(s_sel / T) for the naive negatives the teacher drops and keeps."""
    kept = {(q.qid, n.docid) for q in mined_denoised.queries for n in q.negatives}
    weights: dict[str, list[float]] = {"dropped by the teacher": [], "kept by the teacher": []}
    for pair, score in selection.items():
        weights["kept by the teacher" if pair in kept else "dropped by the teacher"].append(1.0 + np.exp(score / ratio))
    return [
        {
            "negatives": name,
            "count": len(values),
            "mean CET weight": round(float(np.mean(values)), 3) if values else None,
            "median": round(float(np.median(values)), 3) if values else None,
        }
        for name, values in weights.items()
    ]


def dev_run(model: Path, args: argparse.Namespace, paths, dev_queries, bm25_run: Run, doc_texts, work: Path) -> Run:
    """A bi-encoder retrieves from the full corpus; a cross-encoder reranks BM25's top 100."""
    if args.ranker == "cross-encoder":
        bm25 = {q: hits for q, hits in bm25_run.items() if q in dev_queries}
        return rerank_run(bm25, dev_queries, doc_texts, CrossEncoder(model, precision="auto"), 100)
    shutil.rmtree(work, ignore_errors=True)  # dense_search reuses an index it finds: this model's is new
    return dense_search(paths.corpus, model, work, dev_queries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", required=True, help="bi-encoder folder that denoises (trained on train only)")
    parser.add_argument("--window", type=int, default=30, help="negatives come from ranks 1..window")
    parser.add_argument("--count", type=int, default=8, help="negatives kept per query in the MinedSet")
    parser.add_argument("--negatives", type=int, default=1, help="negatives per query per step")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--temperature", type=float, default=0.05, help="bi-encoder scores = cosine / temperature")
    parser.add_argument("--debias-ratio", type=float, default=2.0, help="CET's T (rankkit train cet --debias-ratio)")
    parser.add_argument("--selection-lr", type=float, default=5e-2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--ranker",
        choices=("bi-encoder", "cross-encoder"),
        default="bi-encoder",
        help="what the three conditions train (cross-encoder: CET's selection model is one too)",
    )
    parser.add_argument("--head-lr", type=float, default=1e-3, help="cross-encoders: the new scoring head's rate")
    parser.add_argument("--precision", default=TRAIN_PRECISION, help="training precision")
    args = parser.parse_args()
    result_name = "scifact_cet" if args.ranker == "bi-encoder" else "scifact_cet_cross_encoder"
    work = CACHE / ("cet" if args.ranker == "bi-encoder" else "cet-cross-encoder")
    started = time.time()
    data = scifact_setup(args.threads)
    paths, dev_queries, dev_qrels = data.paths, data.dev_queries, data.dev_qrels
    train_qrels = read_qrels(data.root / "qrels" / "train.tsv")
    train_queries = {q: data.queries[q] for q in train_qrels}
    bm25_path, dense_path = data.runs
    bm25_run, dense_run = read_run(bm25_path), read_run(dense_path)
    doc_texts = read_doc_texts(paths.corpus)
    mining = MiningConfig(seed=args.seed, min_grade=1)
    window = [RankWindow(1, args.window), TopN(args.count)]
    naive = mine(train_queries, train_qrels, candidates_from_run(dense_run, "dense"), window, mining, doc_texts)
    candidates = candidates_from_run(dense_run, "dense")
    positive_best = teacher_scores(args.teacher, candidates, train_queries, train_qrels, doc_texts)
    denoised = mine(
        train_queries,
        train_qrels,
        candidates,
        [RankWindow(1, args.window), MarginFilter(0.0, field="teacher_score"), TopN(args.count)],
        mining,
        doc_texts,
        positive_teacher_scores=positive_best,
    )
    with_provenance = with_pooling_provenance(naive, bm25_run, "bm25")
    measures = resolve_measures(None, MEASURES)
    evaluations = {
        name: evaluate({q: h for q, h in run.items() if q in dev_queries}, dev_qrels, measures)
        for name, run in (("BM25", bm25_run), ("MiniLM untrained", dense_run))
    }
    timings, models = {}, {}
    for condition, mined in zip(CONDITIONS, (naive, denoised, with_provenance)):
        config = TrainConfig(
            output=str(work / condition),
            epochs=args.epochs,
            batch_size=args.batch_size,
            negatives=args.negatives,
            lr=args.lr,
            seed=args.seed,
            precision=args.precision,
            max_length=128 if args.ranker == "cross-encoder" else None,
            overwrite=True,
        )
        clock, cpu = time.time(), time.process_time()
        models[condition] = train_condition(
            mined,
            doc_texts,
            config,
            ranker=args.ranker,
            cet=condition == "CET",
            debias_ratio=args.debias_ratio,
            selection_lr=args.selection_lr,
            head_lr=args.head_lr,
            temperature=args.temperature,
        )
        timings[condition] = {
            "train_s": round(time.time() - clock, 1),
            "train_cpu_s": round(time.process_time() - cpu, 1),
            "load_average": machine_facts()["load_average"],
        }
        run = dev_run(models[condition], args, paths, dev_queries, bm25_run, doc_texts, work / f"{condition}-index")
        write_run(run, work / f"{condition}.trec", tag=condition)
        evaluations[condition] = evaluate(run, dev_qrels, measures)
        print(condition, json.dumps(evaluations[condition].aggregate), flush=True)
    rows = []
    for name, ev in evaluations.items():
        row = {"system": name, **{m: round(ev.aggregate[m], 4) for m in MEASURES}}
        if name in CONDITIONS[1:]:
            for m in MEASURES:
                comparison = paired_compare(m, "naive", evaluations["naive"], name, ev)
                row[f"{m} diff vs naive"] = round(comparison.mean_difference, 4)
                row[f"{m} p vs naive"] = round(comparison.p_value, 4)
        if name in CONDITIONS and args.ranker == "cross-encoder":
            comparison = paired_compare("nDCG@10", "BM25", evaluations["BM25"], name, ev)
            row["nDCG@10 diff vs BM25"] = round(comparison.mean_difference, 4)
            row["nDCG@10 p vs BM25"] = round(comparison.p_value, 4)
        rows.append({**row, **timings.get(name, {})})
    mined_rows = [
        {"MinedSet": name, "queries": m.stats["queries_mined"], "negatives": m.stats["negatives"]}
        for name, m in (("naive / CET", naive), ("denoise", denoised))
    ]
    trained = "cross-encoders reranking BM25's top 100" if args.ranker == "cross-encoder" else "bi-encoders"
    save_result(
        result_name,
        rows,
        title=f"SciFact: naive dense negatives vs teacher-denoised vs CET, {trained} (train -> dev)",
        params={**vars(args), "load_average": machine_facts()["load_average"]},
        started=started,
        extra_tables={
            "MinedSets": mined_rows,
            "CET's pair weights for the naive negatives the teacher drops and keeps": cet_weight_rows(
                selection_scores(models["CET"].parent, with_provenance, doc_texts),
                denoised,
                args.debias_ratio,
            ),
        },
        notes=[
            "Same loss (pairwise softmax), schedule, negatives per step and seed for the three; CET adds "
            "its pair weights from its selection model: a provenance MLP (BM25 rank and score of each "
            "document) for bi-encoders, a second cross-encoder trained beside the first for cross-encoders.",
            "Read on SciFact dev (100 queries, never mined or trained on): bi-encoders retrieve from the full "
            "corpus (bf16, FAISS Flat), cross-encoders rerank BM25's top 100 (so R@100 is BM25's); "
            "p: two-sided paired t-test against naive (and against BM25 for cross-encoders).",
            "Cross-encoders: all-MiniLM-L6-v2's encoder with a new head learning at --head-lr, pairs cut at 128 "
            "tokens; train_cpu_s: CPU seconds of the process while it trained (all threads).",
            "SciFact has no complete judgments, so the false negatives among the mined ones are unknown.",
        ],
    )


if __name__ == "__main__":
    main()
