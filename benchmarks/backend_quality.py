"""What each inference backend costs in retrieval quality: nDCG@10 of a dense MiniLM index built
and searched on each backend (torch fp32, onnx, onnx int8, openvino, openvino int8), against torch
fp32 on the same collection, with the quality gate's numbers each export recorded (min cosine and
top-10 overlap on the corpus's first 256 passages) and a paired t-test against fp32.

The gate's default thresholds (rankkit.options.GATE_MIN_COSINE / GATE_MIN_OVERLAP) are read from
this table: they should pass every export whose nDCG@10 stays within 0.005 of fp32 and refuse
the others. Every index is built as `rankkit index build` builds it, into work/backend-quality/.

    .venv/bin/python benchmarks/backend_quality.py --collections scifact-dev dl19
"""

from __future__ import annotations

import argparse
import shutil
import time

from common import REPO_ROOT, quiet_torch, save_result

from rankkit.data.collection import collection, queries_and_qrels, shared_data_root
from rankkit.eval.compare import paired_compare
from rankkit.eval.measures import evaluate, resolve_measures
from rankkit.index.build import build_index
from rankkit.index.manifest import Manifest
from rankkit.index.options import IndexBuild
from rankkit.retrieve import open_retriever
from rankkit.retrieve.options import DenseQuery

CACHE = REPO_ROOT / "work" / "backend-quality"
COLLECTIONS = {"dl19": ("dl19", None), "scifact-dev": ("scifact", "dev")}
BACKENDS = (("torch", "none"), ("onnx", "none"), ("onnx", "int8"), ("openvino", "none"), ("openvino", "int8"))
MEASURE = "nDCG@10"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--collections", nargs="+", default=list(COLLECTIONS), choices=list(COLLECTIONS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--name", default="backend_quality")
    args = parser.parse_args()
    quiet_torch(args.threads)
    started = time.time()
    rows = []
    for name in args.collections:
        folder, split = COLLECTIONS[name]
        paths = collection(shared_data_root() / folder, split)
        queries, qrels = queries_and_qrels(paths)
        measures = resolve_measures(None, [MEASURE])
        evaluations = {}
        for backend, quantize in BACKENDS:
            gate = {"backend": backend, "quantize": quantize, "gate_min_cosine": -1.0, "gate_min_overlap": 0.0}
            out = CACHE / name / f"{backend}-{quantize}"
            shutil.rmtree(out, ignore_errors=True)
            wall = time.perf_counter()
            build_index(IndexBuild(corpus=str(paths.corpus), kind="dense", output=str(out), precision="fp32", **gate))
            build_s = time.perf_counter() - wall
            retriever = open_retriever([out], DenseQuery(precision="fp32", **gate))
            run = retriever.batch_search(queries, 100)
            evaluation = evaluate(run, qrels, measures)
            evaluations[(backend, quantize)] = evaluation
            agreement = Manifest.read(out).settings.get("agreement") or {}
            row = {
                "collection": name,
                "backend": backend,
                "quantize": quantize,
                MEASURE: round(evaluation.aggregate[MEASURE], 4),
                "delta vs fp32": round(
                    evaluation.aggregate[MEASURE] - evaluations[("torch", "none")].aggregate[MEASURE], 4
                ),
                "gate min cosine": agreement.get("min_cosine", 1.0),
                "gate top-10 overlap": agreement.get("top10_overlap", 1.0),
                "build s": round(build_s, 1),
            }
            if (backend, quantize) != ("torch", "none"):
                compared = paired_compare(MEASURE, "fp32", evaluations[("torch", "none")], "backend", evaluation)
                row["p vs fp32"] = round(compared.p_value, 3)
            rows.append(row)
            print(row, flush=True)
    save_result(
        args.name,
        rows,
        title="Retrieval quality of each inference backend (dense MiniLM, built and searched on the backend)",
        params={"collections": args.collections, "threads": args.threads, "model": "all-MiniLM-L6-v2"},
        notes=[
            "Each index is built with `index build --kind dense --backend B --quantize Q --precision fp32` and "
            "searched with the same backend; the gate was set to pass everything so that every export is measured.",
            "gate min cosine / top-10 overlap: what the export recorded against PyTorch fp32 on the corpus's "
            "first 256 passages (each as a query against the others for the overlap).",
            "p vs fp32: two-sided paired t-test over queries.",
        ],
        started=started,
    )


if __name__ == "__main__":
    main()
