"""Distillation effectiveness: all-mpnet-base-v2 (teacher) -> all-MiniLM-L6-v2 (student), on TREC
DL 2019 or BEIR SciFact (`--dataset`).

Training queries carry no labels: on dl19, MS MARCO dev query texts run against the DL19 passages;
on scifact, the train split's claims against the SciFact abstracts (BM25 top `--depth` as
candidates). Test queries are never trained on: dl19's 43 queries (nDCG@10, R(rel=2)@100) and
SciFact's 100 dev claims (nDCG@10, R@100), each by dense retrieval over the whole collection (top
100) and by reranking BM25's top 100; paired t-tests against the untrained student. Each model
encodes the collection once (cached in --work/pool); both test settings score from those vectors,
and the teacher's scores of the training candidates come from its vectors too, written once as a
run file that every student variant distils from through `rankkit.distill` (a run teacher, scaled
by 1 / temperature, so exactly what `rankkit distill --teacher RUN --teacher-scale 20` does).

Stages are cached in --work, so a rerun (e.g. after a timeout) skips what is done.

    .venv/bin/python benchmarks/distill_eval.py --dataset dl19 --variants plain-kl,plain-margin-mse,contrastive
    .venv/bin/python benchmarks/distill_eval.py --dataset dl19 --speed-only --name distill_speed

--holdout-queries N holds N training queries out of training and logs the student's agreement with the
teacher on them (every --eval-every steps): a label-free criterion to choose rounds or settings by.

--precision (as in `rankkit distill`: auto, fp32 or bf16) is the teacher's scoring, the student's
training autocast and all evaluation encoding; auto is bf16 on a CPU that runs it natively, else fp32.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from common import dl19_dir, quiet_torch, save_result

from rankkit.data.beir import beir_folder, load_beir_split
from rankkit.data.collection import shared_data_root
from rankkit.data.corpus import read_doc_texts
from rankkit.data.qrels import Qrels, read_beir_qrels, read_qrels
from rankkit.data.queries import read_queries, write_queries
from rankkit.data.runs import Hit, Run, read_run, write_run
from rankkit.distill import DistillConfig, PositiveConfig, distill
from rankkit.encode.biencoder import BiEncoder
from rankkit.encode.precision import CHOICES, resolve_precision
from rankkit.eval.compare import paired_compare
from rankkit.eval.measures import Evaluation, evaluate, resolve_measures

TEACHER, STUDENT = "all-mpnet-base-v2", "default"
VARIANTS = {  # name -> DistillConfig overrides
    "plain-kl": {"mode": "plain", "distill_loss": "kl"},
    "plain-margin-mse": {"mode": "plain", "distill_loss": "margin-mse"},
    # as many items per group as a contrastive group (1 + 8 mined + 8 drawn): plain KL at equal encoding cost
    "plain-kl-17": {"mode": "plain", "distill_loss": "kl", "hard_negatives": 8, "self_adversarial_negatives": 8},
    "contrastive": {"mode": "contrastive", "distill_loss": "kl"},
    "contrastive-distil-mined-only": {"mode": "contrastive", "distill_candidates": 0},
    "contrastive-no-self-consistency": {"mode": "contrastive", "positives": PositiveConfig(self_consistency=False)},
    "contrastive-no-discriminator": {"mode": "contrastive", "discriminator": False},
    "contrastive-N1": {"mode": "contrastive", "self_adversarial_rounds": 1},
}


@dataclass(frozen=True)
class Dataset:
    """A collection, its unlabelled training queries and its held-out test queries with qrels."""

    name: str
    collection: Path
    measures: tuple[str, ...]
    test_description: str

    def training_queries(self, count: int) -> dict[str, str]:
        if self.name == "dl19":
            queries = read_queries(shared_data_root() / "msmarco-ids" / "topics.msmarco-passage.dev-subset.txt")
        else:  # SciFact's train claims, labels unread
            root = self.collection.parent
            train = read_beir_qrels(root / "qrels" / "train.tsv")
            queries = {q: text for q, text in read_queries(root / "queries.jsonl").items() if q in train}
        return dict(list(queries.items())[:count])

    def test_split(self) -> tuple[dict[str, str], Qrels]:
        if self.name == "dl19":
            return read_queries(self.collection.parent / "queries.tsv"), read_qrels(
                self.collection.parent / "qrels.txt"
            )
        return load_beir_split(beir_folder(self.collection.parent, "dev"))


DATASETS = {
    "dl19": Dataset("dl19", dl19_dir() / "collection.tsv", ("nDCG@10", "R(rel=2)@100"), "the 43 DL19 queries"),
    "scifact": Dataset(
        "scifact", shared_data_root() / "scifact" / "corpus.jsonl", ("nDCG@10", "R@100"), "SciFact's 100 dev claims"
    ),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="dl19")
    parser.add_argument("--work", type=Path, help="cache folder (default /tmp/rankkit-distill-DATASET)")
    parser.add_argument("--train-queries", type=int, default=1000, help="the first N unlabelled training queries")
    parser.add_argument(
        "--confident-queries",
        type=int,
        help="train on the N of those whose best candidate the teacher scores highest "
        "(rankkit distill --confident-queries)",
    )
    parser.add_argument("--depth", type=int, default=30, help="BM25 candidates per training query")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--queries-per-round", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=8, help="queries per micro-batch")
    parser.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step")
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="distillation seed (groups, dev hold-out, dropout): repeat a variant to see its spread",
    )
    parser.add_argument(
        "--variants",
        default="plain-kl,contrastive,plain-margin-mse,contrastive-no-discriminator,"
        "contrastive-no-self-consistency,contrastive-N1",
    )
    parser.add_argument(
        "--precision",
        default="auto",
        choices=CHOICES,
        help="teacher scoring, the student's training and all evaluation encoding, as `rankkit "
        "distill --precision` (auto: bf16 where the CPU runs it natively, else fp32)",
    )
    parser.add_argument(
        "--holdout-queries",
        type=int,
        default=0,
        help="hold out N training queries and log the student's agreement with the teacher on them "
        "(rankkit distill --holdout-queries)",
    )
    parser.add_argument("--eval-every", type=int, default=0, help="optimizer steps between those dev evaluations")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--name", help="results name (default distill_DATASET)")
    parser.add_argument(
        "--speed-only", action="store_true", help="only the teacher / student speed table (200 texts each)"
    )
    args = parser.parse_args()
    args.work = args.work or Path(f"/tmp/rankkit-distill-{args.dataset}")
    args.name = args.name or f"distill_{args.dataset}"
    args.precision = resolve_precision(args.precision, torch.device("cpu"))  # fp32 or bf16: what the caches hold
    return args


def bm25_run(dataset: Dataset, work: Path, queries: dict[str, str], depth: int, path: Path) -> Run:
    """BM25's top `depth` over the collection for `queries`, cached in `path`."""
    from rankkit.index.bm25 import build_bm25_index
    from rankkit.retrieve.bm25 import BM25Retriever

    if not path.exists():
        index = work / "bm25"
        if not (index / "manifest.json").exists():
            build_bm25_index(dataset.collection, index, overwrite=True)
        write_run(BM25Retriever(index).batch_search(queries, depth), path, tag="bm25")
    return read_run(path)


def test_bm25(dataset: Dataset, work: Path, queries: dict[str, str]) -> Run:
    """The BM25 top 100 that the test reranks (dl19 ships its run; SciFact's is made here)."""
    if dataset.name == "dl19":
        return read_run(dataset.collection.parent / "run.bm25.top100.trec")
    return bm25_run(dataset, work, queries, 100, work / "test.bm25.top100.trec")


def encoder_for(encoders: dict, model: str, args) -> BiEncoder:
    if model not in encoders:
        encoders[model] = BiEncoder(model, device="cpu", precision=args.precision)
    return encoders[model]


def pool_vectors(encoders: dict, model: str, args, work: Path, label: str) -> tuple[list[str], np.ndarray, float]:
    """Every collection document encoded by `model` and the seconds it took; cached in work/pool."""
    vectors_file, meta_file = work / "pool" / f"{label}.npy", work / "pool" / f"{label}.json"
    if vectors_file.exists() and meta_file.exists():
        meta = json.loads(meta_file.read_text())
        return meta["docids"], np.load(vectors_file), meta["seconds"]
    texts = read_doc_texts(DATASETS[args.dataset].collection)
    docids = list(texts)
    encoder = encoder_for(encoders, model, args)
    started = time.perf_counter()
    vectors = encoder.encode([texts[d] for d in docids], show_progress=True, desc=f"{label}: collection")
    seconds = round(time.perf_counter() - started, 1)
    vectors_file.parent.mkdir(parents=True, exist_ok=True)
    np.save(vectors_file, vectors)
    meta_file.write_text(json.dumps({"docids": docids, "seconds": seconds}))
    return docids, vectors, seconds


def teacher_run(args, work: Path, queries: dict[str, str], candidates: Run, encoders: dict, timings: dict) -> Path:
    """The teacher's cosine for every training candidate, as a TREC run, from its collection vectors
    (each document is encoded once, for evaluation and training alike)."""
    path = work / f"train.teacher.top{args.depth}.n{args.train_queries}.trec"
    if not path.exists():
        docids, vectors, _ = pool_vectors(encoders, TEACHER, args, work, "teacher")
        started = time.perf_counter()
        row = {docid: i for i, docid in enumerate(docids)}
        qids = [q for q in candidates if q in queries]
        query_vectors = encoder_for(encoders, TEACHER, args).encode([queries[q] for q in qids], role="query")
        write_run(
            {
                q: [Hit(h.docid, float(v @ vectors[row[h.docid]])) for h in candidates[q]]
                for q, v in zip(qids, query_vectors)
            },
            path,
            tag="mpnet",
        )
        timings["teacher_query_scoring_s"] = round(time.perf_counter() - started, 1)
    return path


def model_eval(encoders: dict, model: str, args, work: Path, label: str) -> tuple[dict[str, Evaluation], float]:
    """`model` on the test queries: dense retrieval over the collection (top 100) and reranking BM25's
    top 100, both from its collection vectors; returns {"dense": ..., "rerank": ...} and the encoding s."""
    cache = work / "eval" / f"{label}.json"
    if cache.exists():
        saved = json.loads(cache.read_text())
        return (
            {
                setting: Evaluation(tuple(found["measures"]), found["per_query"], ())
                for setting, found in saved["evaluations"].items()
            },
            saved["seconds"],
        )
    dataset = DATASETS[args.dataset]
    queries, qrels = dataset.test_split()
    bm25 = test_bm25(dataset, work, queries)
    qids = [q for q in bm25 if q in queries and q in qrels]
    docids, vectors, seconds = pool_vectors(encoders, model, args, work, label)
    row = {docid: i for i, docid in enumerate(docids)}
    scores = encoder_for(encoders, model, args).encode([queries[q] for q in qids], role="query") @ vectors.T
    runs = {
        "dense": {
            q: [Hit(docids[i], float(s[i])) for i in np.argsort(-s, kind="stable")[:100]] for q, s in zip(qids, scores)
        },
        "rerank": {q: [Hit(h.docid, float(s[row[h.docid]])) for h in bm25[q][:100]] for q, s in zip(qids, scores)},
    }
    measures = resolve_measures(None, dataset.measures)
    evaluations = {setting: evaluate(run, {q: qrels[q] for q in qids}, measures) for setting, run in runs.items()}
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(
        json.dumps(
            {
                "evaluations": {
                    setting: {"measures": e.measures, "per_query": e.per_query} for setting, e in evaluations.items()
                },
                "seconds": seconds,
            }
        )
    )
    return evaluations, seconds


def variant_folder(work: Path, name: str, args) -> Path:
    """The cache folder of one variant's distillation, named by every setting that changes what it
    trains or logs, so a run with another setting (say --lr) never reuses it."""
    parts = [
        name,
        f"n{args.train_queries}",
        *([f"c{args.confident_queries}"] if args.confident_queries else []),
        f"d{args.depth}",
        f"r{args.rounds}",
        f"q{args.queries_per_round}",
        f"b{args.batch_size}",
        f"lr{args.lr:g}",
        args.precision,
    ]
    if args.grad_accum > 1:  # 1 is left out, so caches from before the option keep their names
        parts.append(f"ga{args.grad_accum}")
    if args.seed:  # as is seed 0
        parts.append(f"s{args.seed}")
    if args.holdout_queries:  # named 'dev' as before the option's rename, so earlier caches keep their names
        parts += [f"dev{args.holdout_queries}", f"every{args.eval_every}"]
    return work / "models" / "-".join(parts)


def model_row(label: str, evaluations: dict[str, Evaluation], before: dict[str, Evaluation] | None) -> dict:
    """One table row: each measure in each setting, and its paired t-test p against the student before."""
    row: dict = {"model": label}
    for setting, evaluation in evaluations.items():
        for measure in evaluation.measures:
            row[f"{setting} {measure}"] = evaluation.aggregate[measure]
            if before is not None:
                row[f"{setting} {measure} p"] = paired_compare(
                    measure, "before", before[setting], label, evaluation
                ).p_value
    return row


def per_query_rows(evaluations: dict[str, dict[str, Evaluation]], setting: str, measure: str) -> list[dict]:
    """One row per test query, one column per model: kept in the result so runs of other seeds can be
    compared query by query after the work folder is gone."""
    qids = sorted(set().union(*(e[setting].per_query[measure] for e in evaluations.values())))
    return [
        {"query": qid, **{label: e[setting].per_query[measure].get(qid) for label, e in evaluations.items()}}
        for qid in qids
    ]


def speed(args, work: Path) -> list[dict]:
    """Passages/s encoding the collection's first 200 documents, and queries/s searching the last 200
    training queries one at a time (encode, then exact inner-product search of the top 100 over the
    model's collection vectors) and all 200 at once, teacher and student on the same texts, interleaved
    twice, best of two."""
    import faiss

    passages = list(read_doc_texts(DATASETS[args.dataset].collection).values())[:200]
    queries = list(DATASETS[args.dataset].training_queries(10**6).values())[-200:]
    encoders: dict[str, BiEncoder] = {}
    models = {"teacher": TEACHER, "student": STUDENT}
    indexes = {}
    for name, model in models.items():
        vectors = pool_vectors(encoders, model, args, work, "teacher" if name == "teacher" else "student-before")[1]
        indexes[name] = faiss.IndexFlatIP(vectors.shape[1])
        indexes[name].add(vectors)
    best: dict[tuple[str, str], float] = {}

    def keep_best_rate(name: str, kind: str, count: int, run) -> None:
        started = time.perf_counter()
        run()
        best[name, kind] = max(best.get((name, kind), 0.0), count / (time.perf_counter() - started))

    for _ in range(2):
        for name, model in models.items():
            encoder, index = encoder_for(encoders, model, args), indexes[name]

            def one_at_a_time() -> None:
                for query in queries:
                    index.search(encoder.encode([query], role="query"), 100)

            keep_best_rate(name, "passages", len(passages), lambda: encoder.encode(passages))
            keep_best_rate(name, "queries", len(queries), one_at_a_time)
            keep_best_rate(
                name, "queries batched", len(queries), lambda: index.search(encoder.encode(queries, role="query"), 100)
            )
    return [
        {
            "measure": f"{kind}/s",
            "teacher": best["teacher", kind],
            "student": best["student", kind],
            "student / teacher": best["student", kind] / best["teacher", kind],
        }
        for kind in ("passages", "queries", "queries batched")
    ]


def main() -> None:
    args = parse_args()
    quiet_torch(args.threads)
    started = time.time()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    if args.speed_only:
        save_result(
            args.name,
            speed(args, work),
            title=f"Speed: {TEACHER} (teacher) vs all-MiniLM-L6-v2 (student)",
            params={"precision": args.precision, "threads": args.threads, "texts": 200},
            notes=[
                f"{args.dataset}: passages/s encoding the collection's first 200 documents in one call; "
                "queries/s: the last 200 training queries searched one at a time (encode, then a FAISS "
                "IndexFlatIP top 100 over the whole collection), as `rankkit serve` answers a lone client; "
                "queries batched/s: the same 200 encoded in one call and searched in one call, as "
                "`rankkit search` runs a topics file; best of 2 interleaved repetitions"
            ],
            started=started,
        )
        return
    dataset, timings = DATASETS[args.dataset], {}
    encoders: dict[str, BiEncoder] = {}
    queries = dataset.training_queries(args.train_queries)
    queries_file = work / f"train-queries-{args.train_queries}.tsv"
    if not queries_file.exists():
        write_queries(queries, queries_file)
    candidates = bm25_run(
        dataset, work, queries, args.depth, work / f"train.bm25.top{args.depth}.n{args.train_queries}.trec"
    )
    teacher_file = teacher_run(args, work, queries, candidates, encoders, timings)
    title = f"Distillation on {args.dataset}: mpnet teacher -> MiniLM student"
    rows, evaluations = [], {}
    for label, model in (("student-before", STUDENT), ("teacher", TEACHER)):
        evaluations[label], seconds = model_eval(encoders, model, args, work, label)
        before = evaluations["student-before"] if label != "student-before" else None
        rows.append({**model_row(label, evaluations[label], before), "encode_s": seconds})
    params = {**vars(args), "work": str(args.work), **timings}
    kept = (
        f", of which the {args.confident_queries} whose best candidate the teacher scores highest are trained on"
        if args.confident_queries
        else ""
    )
    notes = [
        f"training: the first {len(queries)} unlabelled training queries, BM25 top {args.depth} each, scored "
        f"once by {TEACHER} ({args.precision}){kept}; {args.rounds} rounds x {args.queries_per_round} queries, batch "
        f"{args.batch_size} x {args.grad_accum} accumulated, lr {args.lr}. Test: {dataset.test_description}, "
        "dense retrieval over the whole collection (top 100) and reranking BM25's top 100; p: paired t-test "
        f"against the student before; encode_s: wall seconds to encode the collection ({args.precision}); "
        "train_s / train_cpu_s: distillation wall and process CPU seconds"
    ]

    def save() -> None:
        per_query = {
            f"per query: {setting} nDCG@10": per_query_rows(evaluations, setting, "nDCG@10")
            for setting in ("rerank", "dense")
        }
        save_result(args.name, rows, title=title, params=params, notes=notes, started=started, extra_tables=per_query)

    save()
    for name in [v for v in args.variants.split(",") if v]:
        label = f"student-{name}"
        out = variant_folder(work, name, args)
        config = DistillConfig(
            teacher=str(teacher_file),
            queries=str(queries_file),
            corpus=str(dataset.collection),
            output=str(out),
            student=STUDENT,
            depth=args.depth,
            confident_queries=args.confident_queries,
            teacher_scale=20.0,
            rounds=args.rounds,
            queries_per_round=args.queries_per_round,
            batch_size=args.batch_size,
            grad_accum=args.grad_accum,
            lr=args.lr,
            device="cpu",
            precision=args.precision,
            holdout_queries=args.holdout_queries,
            eval_every=args.eval_every,
            seed=args.seed,
            plot=True,
            **VARIANTS[name],
        )
        timing_file = out / "timing.json"
        if not timing_file.exists():
            cpu, wall = time.process_time(), time.perf_counter()
            distill(config)
            timing_file.write_text(
                json.dumps(
                    {
                        "train_s": round(time.perf_counter() - wall, 1),
                        "train_cpu_s": round(time.process_time() - cpu, 1),
                    }
                )
            )
        evaluations[label], seconds = model_eval(encoders, str(out / "model"), args, work, out.name)
        rows.append(
            {
                **model_row(label, evaluations[label], evaluations["student-before"]),
                "encode_s": seconds,
                **json.loads(timing_file.read_text()),
            }
        )
        knowledge = json.loads((out / "distill.json").read_text())["knowledge"]
        notes.append(f"{label}: knowledge {knowledge}")
        dev = [(0, knowledge["dev_before"])] if "dev_before" in knowledge else []
        dev += [
            (r["step"], r["dev"])
            for r in map(json.loads, (out / "train_log.jsonl").read_text().splitlines())
            if "dev" in r
        ]
        if dev:
            rows[-1].update({f"dev {k}": v for k, v in dev[-1][1].items() if k != "queries"})
            notes.append(
                f"{label}: teacher agreement on {dev[-1][1]['queries']} held-out training queries by step "
                f"(teacher_kl, top10_overlap): "
                + "; ".join(f"{step}: {d['teacher_kl']:.4f}, {d['top10_overlap']:.3f}" for step, d in dev)
            )
        save()


if __name__ == "__main__":
    main()
