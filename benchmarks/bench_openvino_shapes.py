"""What OpenVINO's per-shape preparation costs rankkit's encoder, and the sequence-length step that
saves it (rankkit.encode.backend.OPENVINO_LENGTH_STEP): a call of one text padded up to a multiple
of the step (masked positions), so that queries of different lengths share a few shapes. Batches
are not padded (OPENVINO_PAD_ROWS): `--pad-batches` pads them too, to measure what that costs.

Cases (DL19): the 43 queries one per call, the 43 queries in one call, the first `--passages`
passages in one encode call (rankkit's own batches). Every step is timed in this one process on the
same encoder, interleaved repetition by repetition in ABBA order; the vectors of each step are
compared with step 1's (no padding).

    .venv/bin/python benchmarks/bench_openvino_shapes.py && .venv/bin/python benchmarks/bench_openvino_shapes.py --load 2
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
from bench_encode import start_load, stop_load  # noqa: E402
from common import dl19_dir, machine_facts, median, quiet_torch, save_result  # noqa: E402

from rankkit.data.corpus import read_corpus  # noqa: E402
from rankkit.data.queries import read_queries  # noqa: E402
from rankkit.encode import backend as backends  # noqa: E402
from rankkit.encode.biencoder import BiEncoder  # noqa: E402
from rankkit.options import Inference  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", default="1,8,16,32", help="length steps to compare (1: no padding)")
    parser.add_argument("--reps", type=int, default=6, help="repetitions of each case per step")
    parser.add_argument("--passages", type=int, default=256)
    parser.add_argument("--quantize", default="int8,none", help="OpenVINO exports to time")
    parser.add_argument("--load", type=int, default=0, help="busy background processes while timing")
    parser.add_argument("--pad-batches", action="store_true", help="pad every call, not only one text's")
    parser.add_argument("--name", default=None)
    args = parser.parse_args()
    started = time.time()
    quiet_torch(2)
    steps = [int(step) for step in args.steps.split(",")]
    queries = list(read_queries(dl19_dir() / "queries.tsv").values())
    passages = [d.contents for d in itertools.islice(read_corpus(dl19_dir() / "collection.tsv"), args.passages)]
    cases = {
        "single queries": ([[q] for q in queries], "query"),
        "query batch": ([queries], "query"),
        "passages": ([passages], "passage"),
    }
    load = start_load(args.load)
    rows = []
    if args.pad_batches:
        backends.OPENVINO_PAD_ROWS = sys.maxsize
    try:
        for quantize in args.quantize.split(","):
            encoder = BiEncoder("default", precision="fp32", inference=Inference(backend="openvino", quantize=quantize))
            for case, (calls, role) in cases.items():
                texts = sum(len(call) for call in calls)
                seconds: dict[int, list[float]] = {step: [] for step in steps}
                vectors: dict[int, np.ndarray] = {}
                for rep in range(args.reps + 1):  # the first repetition warms every shape up, untimed
                    for step in steps if rep % 2 == 0 else steps[::-1]:
                        backends.OPENVINO_LENGTH_STEP = step
                        began = time.perf_counter()
                        out = [encoder.encode(call, role=role) for call in calls]
                        if rep:
                            seconds[step].append(time.perf_counter() - began)
                        vectors[step] = np.concatenate(out)
                for step in steps:
                    per_text = median(seconds[step]) / texts
                    rows.append(
                        {
                            "export": f"openvino {quantize}",
                            "case": case,
                            "length step": step,
                            "texts/s": round(1 / per_text, 1),
                            "ms per text": round(1000 * per_text, 3),
                            "vs step 1": round(median(seconds[1]) / median(seconds[step]), 2),
                            "max |diff| vs step 1": float(f"{np.abs(vectors[step] - vectors[1]).max():.2g}"),
                        }
                    )
                    print(rows[-1], flush=True)
    finally:
        backends.OPENVINO_LENGTH_STEP, backends.OPENVINO_PAD_ROWS = 16, 1
        stop_load(load)
    save_result(
        args.name
        or ("openvino_shapes" + ("-every-call" if args.pad_batches else "") + ("-loaded" if args.load else "")),
        rows,
        title="OpenVINO: padding "
        + ("every call's" if args.pad_batches else "one text's")
        + " length to a step, so shapes repeat"
        + (f", beside {args.load} busy processes" if args.load else ", quiet"),
        params={**vars(args), "load_average": machine_facts()["load_average"]},
        notes=[
            "rankkit's BiEncoder (all-MiniLM-L6-v2, OpenVINO, 2 threads, fp32 compute) end to end: tokenising, "
            "rankkit's batches, the forward pass, pooling and normalising.",
            "texts/s: the median repetition; every step interleaved repetition by repetition (ABBA), after an "
            "untimed repetition of each.",
            f"--load: {args.load} processes each multiplying 384x384 matrices on one BLAS thread.",
        ],
        started=started,
    )


if __name__ == "__main__":
    main()
