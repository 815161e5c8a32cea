"""The runs the fusion study fuses: BM25 and dense (untrained all-MiniLM-L6-v2, FAISS Flat)
top-`depth` runs of every query of the shared collections, cached under work/fusion/NAME/.

The heavy part (encoding the corpora) runs once; benchmarks/fusion.py then fuses these runs in
seconds. Run it under the CPU lock:

    flock /tmp/rankkit-cpu.lock .venv/bin/python benchmarks/fusion_runs.py
"""

from __future__ import annotations

import argparse
import json
import time

from common import REPO_ROOT, machine_facts, quiet_torch

from rankkit.data.collection import collection, queries_and_qrels, shared_data_root
from rankkit.data.files import atomic_write
from rankkit.data.queries import read_queries
from rankkit.data.runs import write_run
from rankkit.encode.biencoder import BiEncoder
from rankkit.encode.device import choose_device
from rankkit.encode.precision import CHOICES, resolve_precision
from rankkit.index.bm25 import build_bm25_index
from rankkit.index.dense import DenseBuildConfig, DenseIndex, build_dense_index
from rankkit.retrieve.bm25 import BM25Retriever
from rankkit.retrieve.dense import DenseRetriever

CACHE = REPO_ROOT / "work" / "fusion"
# name -> (folder, split): BEIR folders search all their queries (train and dev), scored per split later
COLLECTIONS = {
    "dl19": ("dl19", None),
    "scifact": ("scifact", "dev"),
    "cranfield": ("cranfield", None),
    "vaswani": ("vaswani", None),
    "cisi": ("cisi", None),
    "medline": ("medline", None),
}


def make_runs(name: str, depth: int, precision: str) -> dict:
    folder, split = COLLECTIONS[name]
    paths = collection(shared_data_root() / folder, split)
    queries = read_queries(paths.queries) if split else queries_and_qrels(paths)[0]
    out = CACHE / name
    timings = {}
    started = time.time()
    if not (out / "bm25" / "manifest.json").is_file():
        build_bm25_index(paths.corpus, out / "bm25", overwrite=True)
    bm25_run = BM25Retriever(out / "bm25").batch_search(queries, depth)
    write_run(bm25_run, out / "bm25.trec", tag="bm25")
    timings["bm25_s"] = round(time.time() - started, 1)
    started = time.time()
    encoder = BiEncoder("default", precision=precision)
    if not (out / "dense" / "manifest.json").is_file():
        build_dense_index(paths.corpus, out / "dense", encoder, DenseBuildConfig(factory="Flat"), overwrite=True)
    dense_run = DenseRetriever(DenseIndex(out / "dense"), encoder).batch_search(queries, depth)
    write_run(dense_run, out / "dense.trec", tag="dense")
    timings["dense_s"] = round(time.time() - started, 1)
    return {"name": name, "queries": len(queries), "depth": depth, "precision": precision, **timings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--collections", nargs="+", default=list(COLLECTIONS), choices=list(COLLECTIONS))
    parser.add_argument("--depth", type=int, default=1000)
    parser.add_argument(
        "--precision",
        default="auto",
        choices=CHOICES,
        help="the dense model's, as rankkit's --precision (default auto: bf16 where the device runs it "
        "natively, as in the recorded study, else fp32)",
    )
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    args.precision = resolve_precision(args.precision, choose_device())  # auto -> fp32 or bf16, as recorded
    quiet_torch(args.threads)
    for name in args.collections:
        row = make_runs(name, args.depth, args.precision)
        row["load_average"] = machine_facts()["load_average"]
        print(json.dumps(row))
        with atomic_write(CACHE / name / "runs.json") as handle:
            json.dump(row, handle, indent=2)


if __name__ == "__main__":
    main()
