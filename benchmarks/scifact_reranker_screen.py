"""Screening reranker recipes on SciFact: one short training run per call (rankkit train_reranker on
the train split's MinedSet), read as nDCG@10 of BM25's top `--depth` dev candidates reranked (a
cheaper read than scifact_reranker.py's top 100, for comparing settings on dev). Each run appends
one row to results/scifact_reranker_screening.{json,md}.

    .venv/bin/python benchmarks/scifact_reranker_screen.py --name lr1e-4 --lr 1e-4 --head-lr 1e-3 \\
        --teacher work/scifact/models/CONFIG/model
"""

from __future__ import annotations

import argparse
import json
import time

from common import machine_facts, results_dir, save_result  # type: ignore[import-not-found]
from scifact_finetune import CACHE, scifact_setup, train_minedset  # type: ignore[import-not-found]
from scifact_reranker import train_from_args  # type: ignore[import-not-found]

from rankkit.data.corpus import read_doc_texts
from rankkit.data.runs import read_run
from rankkit.encode.crossencoder import CrossEncoder
from rankkit.eval import evaluate, resolve_measures
from rankkit.mining.minedset import MinedSet
from rankkit.retrieve.rerank import rerank_run
from rankkit.train.loop import LOG_FILE

NAME = "scifact_reranker_screening"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True, help="the row's name")
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--head-lr", type=float, default=None)
    parser.add_argument("--teacher", default=None)
    parser.add_argument("--teacher-weight", type=float, default=1.0)
    parser.add_argument("--loss", default="softmax", choices=("softmax", "bce"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--negatives", type=int, default=7)
    parser.add_argument("--count", type=int, default=32, help="negatives mined per train query")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--depth", type=int, default=30, help="BM25 dev candidates reranked")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    started = time.time()
    data = scifact_setup(args.threads)
    mined = MinedSet.read(train_minedset(data.root, data.runs, 1, args.count))
    doc_texts = read_doc_texts(data.paths.corpus)
    out = CACHE / f"screen-{args.name}"
    clock = time.time()
    model_dir = train_from_args(args, mined, doc_texts, out)
    train_s = time.time() - clock
    losses = [json.loads(line)["loss"] for line in (out / LOG_FILE).read_text().splitlines()]
    bm25 = {q: hits[: args.depth] for q, hits in read_run(data.runs[0]).items() if q in data.dev_queries}
    reranked = rerank_run(bm25, data.dev_queries, doc_texts, CrossEncoder(model_dir, precision="auto"), args.depth)
    measures = resolve_measures(None, ("nDCG@10",))
    row = {
        "run": args.name,
        "nDCG@10": round(evaluate(reranked, data.dev_qrels, measures).aggregate["nDCG@10"], 4),
        "BM25 nDCG@10": round(evaluate(bm25, data.dev_qrels, measures).aggregate["nDCG@10"], 4),
        "lr": args.lr,
        "head_lr": args.head_lr,
        "teacher": args.teacher or "none",
        "max_length": args.max_length,
        "epochs": args.epochs,
        "steps": len(losses),
        "loss first 10 steps": round(sum(losses[:10]) / len(losses[:10]), 3),
        "loss last 10 steps": round(sum(losses[-10:]) / len(losses[-10:]), 3),
        "train_s": round(train_s),
        "threads": args.threads,
        "teacher_weight": args.teacher_weight,
        "loss": args.loss,
        "negatives": args.negatives,
        "count": args.count,
        "batch_size": args.batch_size,
        "load_average": machine_facts()["load_average"],
    }
    print(json.dumps(row), flush=True)
    earlier = results_dir() / f"{NAME}.json"
    rows = [r for r in json.loads(earlier.read_text())["rows"] if r["run"] != args.name] if earlier.is_file() else []
    save_result(
        NAME,
        [*rows, row],
        title=f"SciFact dev: screening reranker recipes (BM25's top {args.depth} reranked)",
        params={"latest run": args.name},
        started=started,
        notes=[
            "Each row: one `rankkit train reranker` run from all-MiniLM-L6-v2 (a new scoring head) on the "
            "train split's MinedSet, read on the 100 dev queries; rows accumulate across calls.",
            "teacher: the fine-tuned SciFact bi-encoder (scifact_finetune.py, lr 5e-5, 2 epochs, 1 negative), "
            "cosine x 20 as the KL target.",
            "threads: torch threads of the run (two runs at 1 thread shared the 2 cores).",
            "Rows B-E were run by the first draft of this script, which computed the same two loss terms inline "
            "(batch 8, 7 of 32 negatives per group, bf16 autocast); load average 3.0-3.8 during B (other jobs "
            "beside it), 1.5-2.0 during C, D and E. D and E ran at the same time at one thread each.",
        ],
    )


if __name__ == "__main__":
    main()
