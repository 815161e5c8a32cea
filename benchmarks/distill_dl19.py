"""Distillation on TREC DL 2019: all-mpnet-base-v2 (teacher) -> all-MiniLM-L6-v2 (student).

Training queries are MS MARCO dev query texts (no labels used) run against the DL19 passages
(BM25 top `--depth` as candidates); the 43 DL19 queries are only used for testing: reranking
BM25's top 100, nDCG@10 and R(rel=2)@100, paired t-tests against the untrained student.
The teacher scores the training candidates once (a run file), and every student variant
distils from that run through `rankkit.distill` (a run teacher, scaled by 1 / temperature, so
exactly what `rankkit distill --teacher RUN --teacher-scale 20` does).

Stages are cached in --work, so a rerun (e.g. after the CPU lock or a timeout) skips what is done.

    flock /tmp/rankkit-cpu.lock .venv/bin/python benchmarks/distill_dl19.py --variants plain-kl,contrastive
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import dl19_dir, quiet_torch, save_result
from rankkit.data.collection import shared_data_root
from rankkit.data.corpus import read_doc_texts
from rankkit.data.qrels import read_qrels
from rankkit.data.queries import read_queries, write_queries
from rankkit.data.runs import Hit, Run, read_run, write_run
from rankkit.distill import DistillConfig, NegativeConfig, PositiveConfig, distill
from rankkit.distill.teacher import dot_product_scores
from rankkit.encode.biencoder import BiEncoder
from rankkit.eval.compare import paired_compare
from rankkit.eval.measures import Evaluation, evaluate, resolve_measures

TEACHER, STUDENT = "all-mpnet-base-v2", "default"
MEASURES = ("nDCG@10", "R(rel=2)@100")
TITLE = "Distillation on DL19: mpnet teacher -> MiniLM student (rerank BM25 top 100)"
VARIANTS = {  # name -> DistillConfig overrides
    "plain-kl": {"mode": "plain", "distill_loss": "kl"},
    "plain-margin-mse": {"mode": "plain", "distill_loss": "margin-mse"},
    "contrastive": {"mode": "contrastive", "distill_loss": "kl"},
    "contrastive-no-self-consistency": {"mode": "contrastive", "positives": PositiveConfig(self_consistency=False)},
    "contrastive-no-discriminator": {"mode": "contrastive", "discriminator": False},
    "contrastive-N1": {"mode": "contrastive", "self_adversarial_rounds": 1},
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/rankkit-distill-dl19"))
    parser.add_argument("--train-queries", type=int, default=96, help="first N MS MARCO dev queries")
    parser.add_argument("--depth", type=int, default=20, help="BM25 candidates per training query")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--queries-per-round", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--variants", default="plain-kl,contrastive,plain-margin-mse,contrastive-no-discriminator,"
                                              "contrastive-no-self-consistency,contrastive-N1")
    parser.add_argument("--precision", default="bf16", help="for teacher scoring and all evaluation encoding")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--eval-queries", type=int, default=None, help="smoke tests only: the first N DL19 queries")
    parser.add_argument("--name", default="distill_dl19")
    parser.add_argument("--speed-only", action="store_true", help="only the teacher / student speed table (200 texts each)")
    return parser.parse_args()


def train_queries(args, work: Path) -> Path:
    path = work / f"train-queries-{args.train_queries}.tsv"
    if not path.exists():
        queries = read_queries(shared_data_root() / "msmarco-ids" / "topics.msmarco-passage.dev-subset.txt")
        write_queries(dict(list(queries.items())[:args.train_queries]), path)
    return path


def bm25_candidates(args, work: Path, queries_file: Path) -> Path:
    from rankkit.index.bm25 import build_bm25_index
    from rankkit.retrieve.bm25 import BM25Retriever

    path = work / f"train.bm25.top{args.depth}.n{args.train_queries}.trec"
    if not path.exists():
        index = work / "dl19-bm25"
        if not index.exists():
            build_bm25_index(dl19_dir() / "collection.tsv", index)
        write_run(BM25Retriever(index).batch_search(read_queries(queries_file), args.depth), path, tag="bm25")
    return path


def teacher_run(args, work: Path, queries_file: Path, candidates: Path, timings: dict) -> Path:
    """The teacher's cosine for every training candidate, as a TREC run."""
    path = work / f"train.teacher.top{args.depth}.n{args.train_queries}.trec"
    if not path.exists():
        started = time.perf_counter()
        run, queries = read_run(candidates), read_queries(queries_file)
        texts = read_doc_texts(dl19_dir() / "collection.tsv", docids={h.docid for hits in run.values() for h in hits})
        scored = score_run(BiEncoder(TEACHER, device="cpu", precision=args.precision), run, queries, texts)
        write_run(scored, path, tag="mpnet")
        timings["teacher_scoring_s"] = round(time.perf_counter() - started, 1)
    return path


def score_run(encoder: BiEncoder, run: Run, queries: dict[str, str], texts: dict[str, str]) -> Run:
    """The run's documents rescored by the encoder's dot products (each document encoded once)."""
    qids = [q for q in run if q in queries]
    scores = dot_product_scores(encoder, queries, {q: [h.docid for h in run[q]] for q in qids}, texts,
                                progress="encoding")
    return {q: [Hit(h.docid, float(s)) for h, s in zip(run[q], scores[q])] for q in qids}


def rerank_eval(model: str, args, work: Path, label: str) -> tuple[Evaluation, float]:
    """Rerank DL19's BM25 top 100 with `model`; cached per label."""
    cache = work / "eval" / f"{label}{f'-q{args.eval_queries}' if args.eval_queries else ''}.json"
    measures = resolve_measures(None, MEASURES)
    if cache.exists():
        saved = json.loads(cache.read_text())
        return Evaluation(tuple(saved["measures"]), saved["per_query"], ()), saved["seconds"]
    data = dl19_dir()
    run, queries = read_run(data / "run.bm25.top100.trec"), read_queries(data / "queries.tsv")
    run = dict(list(run.items())[:args.eval_queries]) if args.eval_queries else run
    texts = read_doc_texts(data / "collection.tsv", docids={h.docid for hits in run.values() for h in hits})
    started = time.perf_counter()
    reranked = score_run(BiEncoder(model, device="cpu", precision=args.precision), run, queries, texts)
    seconds = time.perf_counter() - started
    qrels = {q: judged for q, judged in read_qrels(data / "qrels.txt").items() if q in run}
    evaluation = evaluate(reranked, qrels, measures)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"measures": evaluation.measures, "per_query": evaluation.per_query, "seconds": seconds}))
    return evaluation, seconds


def speed(args) -> list[dict]:
    """Passages/s and queries/s of teacher and student on the same texts, interleaved twice."""
    data = dl19_dir()
    passages = list(read_doc_texts(data / "collection.tsv").values())[:200]
    queries = list(read_queries(shared_data_root() / "msmarco-ids" / "topics.msmarco-passage.dev-subset.txt").values())[-200:]
    encoders = {"teacher": BiEncoder(TEACHER, device="cpu", precision=args.precision),
                "student": BiEncoder(STUDENT, device="cpu", precision=args.precision)}
    best: dict[tuple[str, str], float] = {}
    for _ in range(2):
        for name, encoder in encoders.items():
            for kind, texts in (("passages", passages), ("queries", queries)):
                started = time.perf_counter()
                encoder.encode(texts)
                rate = len(texts) / (time.perf_counter() - started)
                best[name, kind] = max(best.get((name, kind), 0.0), rate)
    return [{"measure": f"{kind}/s", "teacher": best["teacher", kind], "student": best["student", kind],
             "student / teacher": best["student", kind] / best["teacher", kind]} for kind in ("passages", "queries")]


def main() -> None:
    args = parse_args()
    quiet_torch(args.threads)
    started = time.time()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    if args.speed_only:
        save_result(args.name, speed(args), title=f"Encoding speed: {TEACHER} (teacher) vs all-MiniLM-L6-v2 (student)",
                    params={"precision": args.precision, "threads": args.threads, "texts": 200}, started=started)
        return
    timings: dict[str, float] = {}
    queries_file = train_queries(args, work)
    candidates = bm25_candidates(args, work, queries_file)
    teacher_file = teacher_run(args, work, queries_file, candidates, timings)
    rows, evaluations = [], {}
    for label, model in (("teacher", TEACHER), ("student-before", STUDENT)):
        evaluations[label], seconds = rerank_eval(model, args, work, label)
        rows.append({"model": label, **evaluations[label].aggregate, "rerank_s": round(seconds, 1)})
    save_result(args.name, rows, title=TITLE, params={**vars(args), "work": str(args.work), **timings},
                started=started)
    notes = [f"training: first {args.train_queries} MS MARCO dev query texts, BM25 top {args.depth} DL19 passages "
             f"each, scored once by {TEACHER} ({args.precision}); {args.rounds} rounds x {args.queries_per_round} "
             f"queries, batch {args.batch_size}, lr {args.lr}; test: the 43 DL19 queries, BM25 top-100 reranked"]
    for name in [v for v in args.variants.split(",") if v]:
        label = f"student-{name}"
        out = work / "models" / f"{name}-n{args.train_queries}-r{args.rounds}"
        train_started = time.perf_counter()
        config = DistillConfig(
            teacher=str(teacher_file), queries=str(queries_file), corpus=str(dl19_dir() / "collection.tsv"),
            output=str(out), student=STUDENT, depth=args.depth, teacher_scale=20.0, rounds=args.rounds,
            queries_per_round=args.queries_per_round, batch_size=args.batch_size, lr=args.lr, device="cpu",
            negatives=NegativeConfig(max_rank=args.depth), plot=True, **VARIANTS[name])
        if not (out / "model").exists():
            distill(config)
        train_s = time.perf_counter() - train_started
        evaluations[label], seconds = rerank_eval(str(out / "model"), args, work, f"{label}-n{args.train_queries}-r{args.rounds}")
        row = {"model": label, **evaluations[label].aggregate, "rerank_s": round(seconds, 1), "train_s": round(train_s, 1)}
        for measure in MEASURES:
            c = paired_compare(measure, "student-before", evaluations["student-before"], label, evaluations[label])
            row[f"p {measure} vs before"] = c.p_value
        summary = json.loads((out / "distill.json").read_text())["knowledge"]
        notes.append(f"{label}: knowledge {summary}")
        rows.append(row)
        save_result(args.name, rows, title=TITLE, params={**vars(args), "work": str(args.work), **timings},
                    notes=notes, started=started)


if __name__ == "__main__":
    main()
