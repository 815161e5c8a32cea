"""SciFact fine-tuning (issue 9): a bi-encoder from the default MiniLM, trained on SciFact's train
split and read on its dev split, retrieving from the full corpus (5,183 abstracts).

Steps, each cached under work/scifact/ (git-ignored):
1. BM25 index (`title text`) and the untrained dense index (MiniLM, bf16, Flat); top-100 runs of
   every query (the untrained dense run is the baseline the t-tests compare against).
2. One MinedSet of the TRAIN queries only (qrels/train.tsv): candidates from both runs, ranks
   `--min-rank`..100, the top `--count` per query after labelled positives and their duplicates are
   dropped. Dev queries are never mined or trained on.
3. For each `--grid` config: `train_biencoder` (InfoNCE over in-batch + mined negatives), encode the
   corpus with the trained model (bf16, Flat), retrieve the 100 dev queries, nDCG@10 and R@100,
   two-sided paired t-test against the untrained model. Each config's row is cached, so a grid can
   grow run by run; the table lists the configs of this call's grid.

    .venv/bin/python benchmarks/scifact_finetune.py --grid lr=2e-5,epochs=1,negatives=4,temperature=0.05
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from common import REPO_ROOT, machine_facts, quiet_torch, save_result  # type: ignore[import-not-found]

from rankkit.data.beir import BeirPaths, beir_folder, load_beir_split
from rankkit.data.collection import shared_data_root
from rankkit.data.corpus import read_doc_texts
from rankkit.data.files import atomic_write
from rankkit.data.qrels import Qrels
from rankkit.data.queries import read_queries
from rankkit.data.runs import Run, read_run, write_run
from rankkit.encode.biencoder import BiEncoder
from rankkit.eval import evaluate, paired_compare, resolve_measures
from rankkit.eval.measures import Evaluation
from rankkit.index.bm25 import build_bm25_index
from rankkit.index.dense import DenseBuildConfig, DenseIndex, build_dense_index
from rankkit.mining.minedset import MinedSet
from rankkit.mining.recipe import MiningRecipe
from rankkit.mining.run import run_mining
from rankkit.retrieve.bm25 import BM25Retriever
from rankkit.retrieve.dense import DenseRetriever
from rankkit.train.biencoder import train_biencoder
from rankkit.train.config import TrainConfig

CACHE = REPO_ROOT / "work" / "scifact"
MEASURES = ("nDCG@10", "R@100")
DEPTH = 100
# Training precision of the SciFact benchmarks (this one, scifact_cet.py, scifact_reranker.py): fp32, as
# in their recorded runs and cached rows (whose keys do not name it); `auto` would train under bf16
# autocast on a CPU with native bfloat16.
TRAIN_PRECISION = "fp32"


@dataclass(frozen=True)
class GridPoint:
    lr: float = 2e-5
    epochs: int = 1
    negatives: int = 4
    temperature: float = 0.05
    batch_size: int = 16

    @classmethod
    def parse(cls, text: str) -> "GridPoint":
        """'lr=2e-5,epochs=1,negatives=4,temperature=0.05,batch_size=16' (any subset)."""
        fields = {name: type(getattr(cls(), name)) for name in cls.__dataclass_fields__}
        values = {}
        for item in filter(None, text.split(",")):
            name, _, value = item.partition("=")
            if name not in fields:
                raise SystemExit(f"unknown grid field {name!r}; use {', '.join(fields)}")
            values[name] = fields[name](value)
        return cls(**values)

    @property
    def key(self) -> str:
        return f"lr{self.lr:g}-ep{self.epochs}-neg{self.negatives}-t{self.temperature:g}-bs{self.batch_size}"


@dataclass(frozen=True)
class SciFactSetup:
    root: Path
    paths: BeirPaths  # the dev split
    dev_queries: dict[str, str]
    dev_qrels: Qrels
    queries: dict[str, str]  # every query, train and dev
    runs: tuple[Path, Path]  # BM25 and untrained-dense top 100 of every query


def scifact_setup(threads: int) -> SciFactSetup:
    """Torch pinned to `threads`, the shared SciFact folder with its dev split read, and the
    cached BM25 and untrained-dense runs (made on first use)."""
    quiet_torch(threads)
    root = shared_data_root() / "scifact"
    paths = beir_folder(root, "dev")
    dev_queries, dev_qrels = load_beir_split(paths)
    queries = read_queries(paths.queries)
    return SciFactSetup(root, paths, dev_queries, dev_qrels, queries, retrieval_runs(paths, queries))


def retrieval_runs(paths: BeirPaths, queries: dict[str, str]) -> tuple[Path, Path]:
    """BM25 and untrained-dense top-100 runs of every query (cached)."""
    bm25_run, dense_run = CACHE / "bm25.trec", CACHE / "dense.trec"
    if not bm25_run.is_file():
        if not (CACHE / "bm25" / "manifest.json").is_file():
            build_bm25_index(paths.corpus, CACHE / "bm25", overwrite=True)
        write_run(BM25Retriever(CACHE / "bm25").batch_search(queries, DEPTH), bm25_run, tag="bm25")
    if not dense_run.is_file():
        write_run(dense_search(paths.corpus, "default", CACHE / "dense", queries), dense_run, tag="dense")
    return bm25_run, dense_run


def dense_search(corpus: Path, model: str | Path, index_dir: Path, queries: dict[str, str]) -> Run:
    encoder = BiEncoder(model, precision="bf16")
    if not (index_dir / "manifest.json").is_file():
        build_dense_index(corpus, index_dir, encoder, DenseBuildConfig(factory="Flat"), overwrite=True)
    return DenseRetriever(DenseIndex(index_dir), encoder).batch_search(queries, DEPTH)


def train_minedset(paths_root: Path, runs: tuple[Path, Path], min_rank: int, count: int) -> Path:
    out = CACHE / f"train-r{min_rank}-c{count}.jsonl"
    if not out.is_file():
        run_mining(
            MiningRecipe(
                queries=str(paths_root / "queries.jsonl"),
                qrels=str(paths_root / "qrels" / "train.tsv"),
                corpus=str(paths_root / "corpus.jsonl"),
                output=str(out),
                runs=tuple(str(r) for r in runs),
                depth=DEPTH,
                min_rank=min_rank,
                max_rank=DEPTH,
                count=count,
            )
        )
    return out


def grid_row(
    point: GridPoint,
    mined_path: Path,
    corpus: Path,
    doc_texts: dict[str, str],
    dev_queries: dict[str, str],
    dev_qrels,
    baseline: Evaluation,
    measures,
    seed: int,
) -> dict:
    cached = CACHE / "rows" / f"{point.key}-s{seed}.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    out = CACHE / "models" / f"{point.key}-s{seed}"
    started = time.time()
    model_dir = train_biencoder(
        MinedSet.read(mined_path),
        doc_texts,
        TrainConfig(
            output=str(out),
            epochs=point.epochs,
            batch_size=point.batch_size,
            negatives=point.negatives,
            lr=point.lr,
            seed=seed,
            precision=TRAIN_PRECISION,
            overwrite=True,
        ),
        temperature=point.temperature,
    )
    train_s = time.time() - started
    started = time.time()
    index_dir = CACHE / "indexes" / f"{point.key}-s{seed}"
    shutil.rmtree(index_dir, ignore_errors=True)
    run = dense_search(corpus, model_dir, index_dir, dev_queries)
    encode_s = time.time() - started
    write_run(run, CACHE / "runs" / f"{point.key}-s{seed}.trec", tag=point.key)
    evaluation = evaluate(run, dev_qrels, measures)
    row: dict = {
        "config": point.key,
        "seed": seed,
        "lr": point.lr,
        "epochs": point.epochs,
        "negatives": point.negatives,
        "temperature": point.temperature,
        "batch_size": point.batch_size,
    }
    for name in MEASURES:
        comparison = paired_compare(name, "untrained", baseline, point.key, evaluation)
        row[name] = round(evaluation.aggregate[name], 4)
        row[f"{name} diff"] = round(comparison.mean_difference, 4)
        row[f"{name} p"] = comparison.p_value
    row.update(
        train_s=round(train_s, 1), encode_search_s=round(encode_s, 1), load_average=machine_facts()["load_average"]
    )
    cached.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(cached) as handle:
        json.dump(row, handle, indent=2)
    shutil.rmtree(index_dir, ignore_errors=True)  # the model stays; its index is 8 MB x configs
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", nargs="+", default=["lr=2e-5,epochs=1,negatives=4,temperature=0.05"])
    parser.add_argument("--min-rank", type=int, default=1, help="mining window start (ends at rank 100)")
    parser.add_argument("--count", type=int, default=8, help="negatives mined per train query")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--name", default="scifact_finetune")
    args = parser.parse_args()
    started = time.time()
    data = scifact_setup(args.threads)
    root, paths, dev_queries, dev_qrels, runs = data.root, data.paths, data.dev_queries, data.dev_qrels, data.runs
    measures = resolve_measures(None, MEASURES)
    baselines = {
        name: evaluate({q: h for q, h in read_run(path).items() if q in dev_queries}, dev_qrels, measures)
        for name, path in zip(("bm25", "untrained MiniLM"), runs)
    }
    mined_path = train_minedset(root, runs, args.min_rank, args.count)
    doc_texts = read_doc_texts(paths.corpus)
    rows = [{"config": name, **{m: round(ev.aggregate[m], 4) for m in MEASURES}} for name, ev in baselines.items()]
    for text in args.grid:
        for seed in args.seeds:
            row = grid_row(
                GridPoint.parse(text),
                mined_path,
                paths.corpus,
                doc_texts,
                dev_queries,
                dev_qrels,
                baselines["untrained MiniLM"],
                measures,
                seed,
            )
            print(json.dumps(row))
            rows.append(row)
    mined_stats = json.loads(mined_path.with_suffix(".stats.json").read_text())
    save_result(
        args.name,
        rows,
        title="SciFact: bi-encoder fine-tuned on train, read on dev (full-corpus retrieval)",
        params={
            "min_rank": args.min_rank,
            "count": args.count,
            "depth": DEPTH,
            "threads": args.threads,
            "mined_queries": mined_stats.get("queries_mined"),
            "mined_negatives": mined_stats.get("negatives"),
        },
        notes=[
            "Train: qrels/train.tsv (709 queries); read: qrels/dev.tsv (100 queries), never mined or trained on.",
            "Negatives: BM25 and untrained-MiniLM top-100 candidates of each train query, ranks "
            f"{args.min_rank}..{DEPTH}, top {args.count} after dropping labelled positives and duplicates "
            "of their text; each training group samples `negatives` of them.",
            "Loss: InfoNCE over in-batch positives and the batch's mined negatives (rankkit train biencoder).",
            "Read: corpus re-encoded with the trained model in bf16, FAISS Flat, top 100 of each dev query.",
            "diff / p: mean per-query difference and two-sided paired t-test against untrained MiniLM.",
            "train_s: wall seconds of training on this CPU (2 cores); encode_search_s: corpus + dev queries.",
        ],
        started=started,
    )


if __name__ == "__main__":
    main()
