"""A cross-encoder for TREC DL 2019 trained without DL19 labels: MiniLM with a new scoring head
learns all-mpnet-base-v2's scores on MS MARCO dev queries (their texts only, no qrels) over the
DL19 passages, then reranks DL19's BM25 top 100 (the shared run; its 43 queries are read only
here, never trained or tuned on).

1. Candidates: rankkit's BM25 (the DL19 pool index of benchmarks/sparse_retrieval.py, built if
   absent) top `--depth` for the first `--queries` MS MARCO dev queries.
2. Teacher: all-mpnet-base-v2 (the `teacher` extra) scores every candidate (cosine x 20, each
   passage encoded once), written as a TREC run.
3. Labels come from the teacher too: its top candidate of each query is the query's positive
   (pseudo-qrels), and `rankkit mine` takes the top `--count` negatives from the BM25 candidates
   within rank `--mine-depth`.
4. `rankkit train reranker --teacher TEACHER_RUN`: the label loss on the pseudo-positive and the
   listwise KL to the teacher's scores; the settings are the SciFact recipe's (docs/training.md),
   not chosen on DL19.
5. Dev (what settings are chosen on): the last `--dev-queries` queries whose teacher top candidate
   reaches cosine 0.5 are held out of training; each system reranks their BM25 candidates, read as
   RR@10 of the teacher's top candidate (agreement with the teacher, no human labels).
6. DL19: BM25's top 100 reranked by the trained cross-encoder and rescored by the teacher itself;
   nDCG@10 with paired t-tests against BM25 and the teacher.

`--model` starts from a cross-encoder that already ranks (its head kept), such as the SciFact
reranker of benchmarks/scifact_reranker.py, instead of MiniLM with a new head.

    .venv/bin/python benchmarks/dl19_reranker.py --queries 6980 --min-teacher-cosine 0.5 --epochs 4 \
        --model work/scifact/reranker-scifact_reranker/model --name dl19_reranker-scifact-start-depth100
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import REPO_ROOT, save_result  # type: ignore[import-not-found]
from scifact_reranker import bi_encoder_rerank, train_from_args  # type: ignore[import-not-found]

from rankkit.data.collection import shared_data_root
from rankkit.data.corpus import read_doc_texts
from rankkit.data.qrels import read_qrels
from rankkit.data.queries import read_queries
from rankkit.data.runs import Hit, read_run, write_run
from rankkit.distill.teacher import BiEncoderTeacher
from rankkit.encode.crossencoder import CrossEncoder
from rankkit.eval import evaluate, paired_compare, resolve_measures
from rankkit.index.build import build_index
from rankkit.index.manifest import is_index_folder
from rankkit.index.options import IndexBuild
from rankkit.mining.minedset import MinedSet
from rankkit.mining.recipe import MiningRecipe
from rankkit.mining.run import run_mining
from rankkit.retrieve import open_retriever
from rankkit.retrieve.rerank import rerank_run

WORK = REPO_ROOT / "work" / "dl19-reranker"
TEACHER = "all-mpnet-base-v2"
TEACHER_SCALE = 20.0  # the bi-encoder teacher's cosines on the student's score scale (open_teacher's default)
DEV_MIN_COSINE = 0.5  # dev queries have a related passage in the pool (the teacher's top candidate reaches it)


def training_data(args: argparse.Namespace, dl19: Path) -> tuple[tuple[Path, Path, Path, Path], bool]:
    """Queries, BM25 candidate run, teacher run and pseudo-qrels of the MS MARCO dev queries (those
    of an earlier run with the same queries are reused: the second value says so)."""
    bm25_index = REPO_ROOT / "work" / "sparse" / "dl19" / "bm25"
    if not is_index_folder(bm25_index):
        build_index(IndexBuild(corpus=str(dl19 / "collection.tsv"), kind="bm25", output=str(bm25_index)))
    topics = shared_data_root() / "msmarco-ids" / "topics.msmarco-passage.dev-subset.txt"
    queries = dict(list(read_queries(topics).items())[: args.queries])
    WORK.mkdir(parents=True, exist_ok=True)
    files = [WORK / name for name in ("queries.tsv", "bm25.trec", "teacher.trec", "pseudo-qrels.txt")]
    queries_file, bm25_file, teacher_file, qrels_file = files
    if is_cached(files, list(queries), args.depth):
        return (queries_file, bm25_file, teacher_file, qrels_file), True  # the teacher is slow: keep its scores
    queries_file.write_text("".join(f"{qid}\t{text}\n" for qid, text in queries.items()))
    bm25 = open_retriever([bm25_index]).batch_search(queries, args.depth)
    write_run(bm25, bm25_file, tag="bm25")
    candidates = {qid: [h.docid for h in hits] for qid, hits in bm25.items() if hits}
    doc_texts = read_doc_texts(dl19 / "collection.tsv", docids={d for found in candidates.values() for d in found})
    teacher = BiEncoderTeacher(TEACHER, scale=TEACHER_SCALE, precision=args.precision)
    scores = teacher.score(queries, candidates, doc_texts)
    teacher_run = {
        qid: sorted((Hit(d, float(s)) for d, s in zip(found, scores[qid])), key=lambda h: -h.score)
        for qid, found in candidates.items()
    }
    write_run(teacher_run, teacher_file, tag="teacher")
    qrels_file.write_text("".join(f"{qid} 0 {hits[0].docid} 1\n" for qid, hits in teacher_run.items()))
    return (queries_file, bm25_file, teacher_file, qrels_file), False


def is_cached(files: list[Path], qids: list[str], depth: int) -> bool:
    """Whether the data files (queries, BM25 run, teacher run, pseudo-qrels) are those of the same
    queries at the same candidate depth."""
    if not all(f.is_file() for f in files):
        return False
    queries_file, bm25_file = files[:2]
    return list(read_queries(queries_file)) == qids and max(map(len, read_run(bm25_file).values())) == depth


def split_pseudo_qrels(qrels_file: Path, teacher_file: Path, min_cosine: float, dev_count: int) -> tuple[Path, Path]:
    """Training and dev pseudo-qrels. Dev: the last `dev_count` queries whose teacher top candidate
    reaches DEV_MIN_COSINE, the same queries whatever `min_cosine` is. Training: the other queries
    whose top candidate reaches `min_cosine`, those with a related passage in the pool (the others
    only teach which unrelated passage is least so)."""
    teacher = read_run(teacher_file)

    def top_cosine(line: str) -> float:
        return teacher[line.split()[0]][0].score / TEACHER_SCALE

    lines = qrels_file.read_text().splitlines(keepends=True)
    related = [line for line in lines if top_cosine(line) >= DEV_MIN_COSINE]
    if not 0 < dev_count < len(related):
        raise SystemExit(f"--dev-queries {dev_count}: {len(related)} queries can be dev queries; hold out fewer")
    dev = related[-dev_count:]
    held_out = set(dev)
    train = [line for line in lines if top_cosine(line) >= min_cosine and line not in held_out]
    train_file, dev_file = WORK / f"pseudo-qrels.min{min_cosine:g}.train.txt", WORK / "pseudo-qrels.dev.txt"
    train_file.write_text("".join(train))
    dev_file.write_text("".join(dev))
    return train_file, dev_file


def dev_agreement(
    queries_file: Path, bm25_file: Path, dev_qrels: Path, dl19: Path, rerankers: dict[str, CrossEncoder]
) -> dict[str, float]:
    """RR@10 of the teacher's top candidate among the held-out queries' BM25 candidates, for BM25's
    own order and each reranker's (keyed by the system's name before its parenthesis)."""
    qrels = read_qrels(dev_qrels)
    queries = {qid: text for qid, text in read_queries(queries_file).items() if qid in qrels}
    bm25 = {qid: hits for qid, hits in read_run(bm25_file).items() if qid in qrels}
    texts = read_doc_texts(dl19 / "collection.tsv", docids={h.docid for hits in bm25.values() for h in hits})
    measures = resolve_measures(None, ["RR@10"])
    runs = {"BM25": bm25} | {
        name.split(" (")[0]: rerank_run(bm25, queries, texts, model, depth=100) for name, model in rerankers.items()
    }
    return {name: round(evaluate(run, qrels, measures).aggregate["RR@10"], 4) for name, run in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=3000, help="MS MARCO dev queries trained on (the first N)")
    parser.add_argument(
        "--depth", type=int, default=100, help="BM25 candidates per query (teacher-scored; dev reranks them)"
    )
    parser.add_argument(
        "--mine-depth", type=int, default=None, help="BM25 ranks the negatives are mined from (default: --depth)"
    )
    parser.add_argument(
        "--min-teacher-cosine",
        type=float,
        default=0.0,
        help="train only on queries whose teacher top candidate reaches this cosine",
    )
    parser.add_argument("--dev-queries", type=int, default=100, help="queries held out of training, for dev")
    parser.add_argument(
        "--model", default="default", help="starting checkpoint: MiniLM with a new head, or a cross-encoder folder"
    )
    parser.add_argument("--count", type=int, default=32, help="negatives mined per query (--negatives drawn a step)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--negatives", type=int, default=7)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--head-lr", type=float, default=1e-3)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--teacher-weight", type=float, default=1.0)
    parser.add_argument("--loss", default="softmax", choices=["softmax", "bce"])
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="dl19_reranker", help="results/NAME.md and .json")
    args = parser.parse_args()
    started = time.time()
    dl19 = shared_data_root() / "dl19"

    queries = read_queries(dl19 / "queries.tsv")
    qrels = read_qrels(dl19 / "qrels.txt")
    measures = resolve_measures("trec-dl")
    bm25 = {qid: hits[:100] for qid, hits in read_run(dl19 / "run.bm25.top100.trec").items()}
    texts = read_doc_texts(dl19 / "collection.tsv", docids={h.docid for hits in bm25.values() for h in hits})
    runs = {  # the baselines first: a failure shows before the long training
        "BM25 (shared run, top 100)": bm25,
        "mpnet teacher rescoring": bi_encoder_rerank(TEACHER, bm25, queries, texts),
    }
    print({name: round(evaluate(run, qrels, measures).aggregate["nDCG@10"], 4) for name, run in runs.items()})
    t0, cpu0 = time.perf_counter(), time.process_time()
    (queries_file, bm25_file, teacher_file, qrels_file), reused = training_data(args, dl19)
    data_s, data_cpu = time.perf_counter() - t0, time.process_time() - cpu0
    train_qrels, dev_qrels = split_pseudo_qrels(qrels_file, teacher_file, args.min_teacher_cosine, args.dev_queries)
    mined_file = WORK / "mined.jsonl"
    mine_depth = args.mine_depth or args.depth
    run_mining(
        MiningRecipe(
            queries=str(queries_file),
            qrels=str(train_qrels),
            corpus=str(dl19 / "collection.tsv"),
            runs=(str(bm25_file),),
            count=args.count,
            max_rank=mine_depth,
            output=str(mined_file),
        )
    )
    mined = MinedSet.read(mined_file)
    needed = {d for q in mined.queries for d in (*q.positives, *(n.docid for n in q.negatives))}
    doc_texts = read_doc_texts(dl19 / "collection.tsv", docids=needed)
    t0, cpu0 = time.perf_counter(), time.process_time()
    args.teacher = str(teacher_file)
    model = train_from_args(args, mined, doc_texts, WORK / "reranker", model=args.model)
    train_s, train_cpu = time.perf_counter() - t0, time.process_time() - cpu0
    rerankers = {"cross-encoder (no DL19 labels)": CrossEncoder(model, precision=args.precision)}
    if args.model != "default":
        rerankers = {"start cross-encoder": CrossEncoder(args.model, precision=args.precision), **rerankers}
    dev = dev_agreement(queries_file, bm25_file, dev_qrels, dl19, rerankers)
    for name, reranker in rerankers.items():
        runs[name] = rerank_run(bm25, queries, texts, reranker, depth=100)

    for name, run in runs.items():
        write_run(run, WORK / f"{name.split()[0].lower()}.dl19.trec", tag=name.split()[0])
    evals = {name: evaluate(run, qrels, measures) for name, run in runs.items()}
    reranker = "cross-encoder (no DL19 labels)"
    rows = []
    for name, evaluation in evals.items():
        row = {
            "system": name,
            f"dev RR@10 ({args.dev_queries} queries)": dev.get(name.split(" (")[0], ""),
            "nDCG@10": round(evaluation.aggregate["nDCG@10"], 4),
        }
        for baseline in ("BM25 (shared run, top 100)", "mpnet teacher rescoring", "start cross-encoder"):
            if name == reranker and baseline in evals:
                test = paired_compare("nDCG@10", baseline, evals[baseline], name, evaluation)
                row[f"vs {baseline.split()[0]}"] = f"{test.mean_difference:+.4f} (p {test.p_value:.3f})"
        rows.append(row)
    save_result(
        args.name,
        rows,
        title="DL19 cross-encoder trained without DL19 labels (MS MARCO dev queries, mpnet teacher)",
        params=vars(args),
        notes=[
            f"training data: the first {args.queries} MS MARCO dev queries (texts only; those whose teacher top "
            f"candidate reaches cosine {args.min_teacher_cosine:g}), BM25 top {args.depth} "
            f"over the DL19 pool (15,939 passages); {len(mined.queries)} groups mined (the top {args.count} "
            f"negatives within BM25 rank {mine_depth}); teacher {TEACHER} "
            f"cosine x {TEACHER_SCALE:g}; positive = the teacher's top candidate. Data and teacher scoring: "
            + (
                "reused from an earlier run of the same queries."
                if reused
                else f"{data_s:.0f} s wall, {data_cpu:.0f} s CPU."
            ),
            f"dev: the last {args.dev_queries} queries whose teacher top candidate reaches cosine "
            f"{DEV_MIN_COSINE:g}, held out of training; RR@10 of the teacher's top candidate among their BM25 "
            f"top {args.depth} (agreement with the teacher).",
            f"training: {train_s:.0f} s wall, {train_cpu:.0f} s CPU (this process), from {args.model} "
            "(default: MiniLM with a new head); settings from the parameters above, none chosen on DL19.",
            "evaluation: the 43 DL19 queries, BM25's top 100 of the shared run (every one of its passages is "
            "in the pool), TREC DL measures (nDCG@10 graded).",
        ],
        started=started,
    )


if __name__ == "__main__":
    main()
