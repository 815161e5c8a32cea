"""SciFact reranker: a cross-encoder from the default MiniLM (a new scoring head), trained on the
train split's MinedSet (benchmarks/scifact_finetune.py's candidates, `--count` negatives per query),
optionally learning a teacher's scores beside the labels (`--teacher`, e.g. the fine-tuned
bi-encoder), reranking BM25's top 100 of the 100 dev queries; against BM25 itself and against
bi-encoders (untrained MiniLM, and `--biencoder`, the fine-tuned one) rescoring the very same
candidates. Paired t-tests against BM25 and against the untrained bi-encoder.

    .venv/bin/python benchmarks/scifact_reranker.py --biencoder work/scifact/models/CONFIG/model \
        --teacher work/scifact/models/CONFIG/model --head-lr 1e-3
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import machine_facts, save_result  # type: ignore[import-not-found]
from scifact_finetune import CACHE, MEASURES, scifact_setup, train_minedset  # type: ignore[import-not-found]

from rankkit.data.corpus import read_doc_texts
from rankkit.data.runs import Hit, Run, read_run, write_run
from rankkit.distill.teacher import dot_product_scores
from rankkit.encode.biencoder import BiEncoder
from rankkit.encode.crossencoder import CrossEncoder
from rankkit.eval import evaluate, paired_compare, resolve_measures
from rankkit.mining.minedset import MinedSet
from rankkit.retrieve.rerank import rerank_run
from rankkit.train.config import RerankerConfig, TrainConfig
from rankkit.train.reranker import train_reranker

DEPTH = 100


def bi_encoder_rerank(model: str | Path, run: Run, queries: dict[str, str], doc_texts: dict[str, str]) -> Run:
    """The run's candidates rescored by a bi-encoder's cosine (each document encoded once)."""
    candidates = {qid: [h.docid for h in hits[:DEPTH]] for qid, hits in run.items()}
    scores = dot_product_scores(BiEncoder(model, precision="auto"), queries, candidates, doc_texts)
    return {
        qid: sorted((Hit(d, float(s)) for d, s in zip(candidates[qid], scores[qid])), key=lambda h: -h.score)
        for qid in candidates
    }


def train_from_args(
    args: argparse.Namespace, mined: MinedSet, doc_texts: dict[str, str], out: Path, model: str = "default"
) -> Path:
    """`rankkit train reranker` from `model` (a cross-encoder folder keeps its head) with the script's
    training arguments, into `out` (replaced)."""
    return train_reranker(
        mined,
        doc_texts,
        TrainConfig(
            output=str(out),
            model=model,
            epochs=args.epochs,
            batch_size=args.batch_size,
            negatives=args.negatives,
            lr=args.lr,
            seed=args.seed,
            precision=args.precision,
            max_length=args.max_length,
            overwrite=True,
        ),
        RerankerConfig(loss=args.loss, teacher=args.teacher, teacher_weight=args.teacher_weight, head_lr=args.head_lr),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--biencoder", help="fine-tuned bi-encoder folder to compare on the same candidates")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--negatives", type=int, default=4)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--min-rank", type=int, default=1)
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--teacher", help="model whose scores the reranker also learns (rankkit train reranker --teacher)"
    )
    parser.add_argument("--teacher-weight", type=float, default=1.0)
    parser.add_argument("--head-lr", type=float, default=None)
    parser.add_argument("--loss", default="softmax", choices=("softmax", "bce"))
    parser.add_argument("--name", default="scifact_reranker", help="result file name")
    parser.add_argument("--precision", default="auto", help="training precision (rankkit train reranker's default)")
    parser.add_argument("--max-length", type=int, default=None, help="pair length in tokens (default: the model's)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    started = time.time()
    data = scifact_setup(args.threads)
    paths, dev_queries, dev_qrels = data.paths, data.dev_queries, data.dev_qrels
    bm25_path = data.runs[0]
    mined_path = train_minedset(data.root, data.runs, args.min_rank, args.count)
    doc_texts = read_doc_texts(paths.corpus)
    bm25 = {q: hits[:DEPTH] for q, hits in read_run(bm25_path).items() if q in dev_queries}
    runs, seconds = {"BM25": bm25}, {}
    clock = time.time()
    runs["MiniLM untrained (bi-encoder)"] = bi_encoder_rerank("default", bm25, dev_queries, doc_texts)
    seconds["MiniLM untrained (bi-encoder)"] = {"rerank_s": round(time.time() - clock, 1)}
    if args.biencoder:
        clock = time.time()
        runs["fine-tuned bi-encoder"] = bi_encoder_rerank(args.biencoder, bm25, dev_queries, doc_texts)
        seconds["fine-tuned bi-encoder"] = {"rerank_s": round(time.time() - clock, 1)}
    out = CACHE / f"reranker-{args.name}"
    clock, cpu = time.time(), time.process_time()
    model_dir = train_from_args(args, MinedSet.read(mined_path), doc_texts, out)
    train_s, train_cpu_s = time.time() - clock, time.process_time() - cpu
    clock = time.time()
    runs["cross-encoder (fine-tuned)"] = rerank_run(
        bm25, dev_queries, doc_texts, CrossEncoder(model_dir, precision="auto"), DEPTH
    )
    seconds["cross-encoder (fine-tuned)"] = {
        "train_s": round(train_s, 1),
        "train_cpu_s": round(train_cpu_s, 1),
        "rerank_s": round(time.time() - clock, 1),
        "load_average": machine_facts()["load_average"],
    }
    write_run(runs["cross-encoder (fine-tuned)"], out / "dev-reranked.trec", tag="ce")
    measures = resolve_measures(None, MEASURES)
    evaluations = {name: evaluate(run, dev_qrels, measures) for name, run in runs.items()}
    rows = []
    for name, ev in evaluations.items():
        row = {"system (over BM25's top 100)": name, **{m: round(ev.aggregate[m], 4) for m in MEASURES}}
        for baseline in ("BM25", "MiniLM untrained (bi-encoder)"):
            if name != baseline:
                comparison = paired_compare("nDCG@10", baseline, evaluations[baseline], name, ev)
                row[f"nDCG@10 diff vs {baseline}"] = round(comparison.mean_difference, 4)
                row[f"p vs {baseline}"] = round(comparison.p_value, 4)
        rows.append({**row, **seconds.get(name, {})})
        print(json.dumps(rows[-1]), flush=True)
    save_result(
        args.name,
        rows,
        title="SciFact dev: rerankers over BM25's top 100",
        params=vars(args),
        started=started,
        notes=[
            "Cross-encoder: all-MiniLM-L6-v2's encoder with a new scoring head (rankkit train reranker): "
            "listwise softmax over (positive, `negatives` mined negatives) per train query and, with "
            "--teacher, the listwise KL to the teacher's scores of the same group (a bi-encoder teacher's "
            "cosines x 20); trained and scored at --precision (auto: bf16 where the CPU runs it natively).",
            f"MinedSet: benchmarks/scifact_finetune.py's candidates (train split only; BM25 + untrained dense "
            f"top 100), the top {args.count} negatives per query.",
            "train_cpu_s: CPU seconds of the training process (all threads).",
            "Bi-encoders rescore the same BM25 candidates by cosine; R@100 is the same for every row by "
            "construction (same 100 candidates).",
            "p: two-sided paired t-test on nDCG@10 over the 100 dev queries.",
        ],
    )


if __name__ == "__main__":
    main()
