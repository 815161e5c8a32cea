"""Training precision on this CPU: rankkit's training loop in fp32 (the anchor) and in bf16 autocast
(`--precision bf16`, what `auto` picks on a CPU with native bfloat16), for the packaged MiniLM as a
bi-encoder (InfoNCE) and as a cross-encoder (listwise softmax), on DL19 groups: a query's
judged-relevant passage and BM25 negatives.

Runs alternate fp32, bf16, bf16, fp32 (ABBA) per trainer, each from the same checkpoint and seed
for `--steps` optimizer steps; the speed is the median groups/s of the steps after the first (from
train_log.jsonl), the ratio is bf16 / fp32 of the same trainer in this run; the loss columns show
that both precisions take the same path (mean training loss over the steps).

    .venv/bin/python benchmarks/bench_train_precision.py                 # 12 steps per run
    .venv/bin/python benchmarks/bench_train_precision.py --steps 3 --name train_precision-smoke
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import dl19_dir, median, quiet_torch, save_result

from rankkit.data.corpus import read_doc_texts
from rankkit.data.qrels import read_qrels
from rankkit.data.queries import read_queries
from rankkit.data.runs import read_run
from rankkit.encode.precision import bf16_supported
from rankkit.mining import TopN, candidates_from_run, mine
from rankkit.train import TrainConfig, train_biencoder, train_reranker
from rankkit.train.loop import LOG_FILE

TRAINERS = {"bi-encoder": train_biencoder, "cross-encoder": train_reranker}
ORDER = ("fp32", "bf16", "bf16", "fp32")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=12, help="optimizer steps per run (default 12)")
    parser.add_argument("--batch-size", type=int, default=8, help="queries per step (default 8)")
    parser.add_argument("--negatives", type=int, default=4, help="BM25 negatives per query (default 4)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--name", default="train_precision", help="results name (default train_precision)")
    return parser.parse_args()


def dl19_mined(negatives: int):
    """The DL19 queries, each with its judged-relevant passages and BM25's top unjudged-relevant ones."""
    folder = dl19_dir()
    docs = read_doc_texts(folder / "collection.tsv")
    run = read_run(folder / "run.bm25.top100.trec")
    mined = mine(
        read_queries(folder / "queries.tsv"),
        read_qrels(folder / "qrels.txt"),
        candidates_from_run(run, "bm25"),
        [TopN(negatives)],
        doc_texts=docs,
    )
    return mined, docs


def one_run(trainer: str, precision: str, mined, docs, args: argparse.Namespace, work: Path) -> dict:
    output = work / f"{trainer}-{precision}-{time.perf_counter_ns()}"
    config = TrainConfig(
        output=str(output),
        max_steps=args.steps,
        batch_size=args.batch_size,
        negatives=args.negatives,
        device="cpu",
        precision=precision,
        seed=0,
    )
    started = time.perf_counter()
    TRAINERS[trainer](mined, docs, config)
    wall = time.perf_counter() - started
    log = [json.loads(line) for line in (output / LOG_FILE).read_text().splitlines()]
    return {
        "groups_per_s": median(r["groups_per_s"] for r in log[1:]),
        "loss": float(np.mean([r["loss"] for r in log])),
        "wall_s": wall,
    }


def main() -> None:
    args = parse_args()
    if not bf16_supported(torch.device("cpu")):
        raise SystemExit("this CPU has no native bfloat16: nothing to compare")
    quiet_torch(args.threads)
    started = time.time()
    mined, docs = dl19_mined(args.negatives)
    rows, runs = [], []
    with tempfile.TemporaryDirectory() as work:
        for trainer in TRAINERS:
            measured: dict[str, list[dict]] = {"fp32": [], "bf16": []}
            for precision in ORDER:
                measured[precision].append(one_run(trainer, precision, mined, docs, args, Path(work)))
                runs.append({"trainer": trainer, "precision": precision, **measured[precision][-1]})
            speed = {p: median(r["groups_per_s"] for r in measured[p]) for p in measured}
            for precision in ("fp32", "bf16"):
                rows.append(
                    {
                        "trainer": trainer,
                        "precision": precision,
                        "groups_per_s": speed[precision],
                        "ratio_vs_fp32": speed[precision] / speed["fp32"],
                        "mean_loss": float(np.mean([r["loss"] for r in measured[precision]])),
                    }
                )
    save_result(
        args.name,
        rows,
        title="Training precision: bf16 autocast vs fp32 on this CPU",
        started=started,
        params=vars(args),
        extra_tables={"runs (in order)": runs},
        notes=[
            "model: the packaged all-MiniLM-L6-v2; groups: a DL19 query, a judged-relevant passage, "
            f"{args.negatives} BM25 negatives; groups_per_s: median over the steps after the first, "
            "then the median of the two runs per precision; weights stay fp32 in both"
        ],
    )


if __name__ == "__main__":
    main()
