"""How many threads an exported model's call should run on: one or two (the machine's cores), for
ONNX Runtime (its threads spinning while they wait, or not) and OpenVINO, by call size (one query,
four queries, the 43 DL19 queries, 32 passages), on a quiet machine and beside `--load N` busy
processes. Sets rankkit.encode.backend's SMALL_CALL_TOKENS and ORT_SPINNING.

Every configuration is timed in this one process, interleaved call by call in ABBA order.

    .venv/bin/python benchmarks/bench_threads.py && .venv/bin/python benchmarks/bench_threads.py --load 2
"""

from __future__ import annotations

import argparse
import itertools
import os
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
from bench_encode import start_load, stop_load  # noqa: E402
from common import dl19_dir, median, quiet_torch, save_result  # noqa: E402

from rankkit.data.corpus import read_corpus  # noqa: E402
from rankkit.data.queries import read_queries  # noqa: E402
from rankkit.encode import backend as backends  # noqa: E402
from rankkit.encode.batching import right_padded  # noqa: E402
from rankkit.encode.biencoder import BiEncoder  # noqa: E402
from rankkit.options import Inference  # noqa: E402

EXPORTS = (("onnx", "none"), ("onnx", "int8"), ("openvino", "none"), ("openvino", "int8"))


def engines(forward, spin_variants: bool) -> dict[str, object]:
    """The engine instances to compare: 1 and 2 threads (ORT: 2 threads spinning and not)."""
    if not spin_variants:
        return {"1 thread": forward.open(1), "2 threads": forward.open(2)}
    found = {}
    for spinning in (False, True):
        backends.ORT_SPINNING = spinning
        found["1 thread"] = found.get("1 thread") or forward.open(1)
        found[f"2 threads{' (spinning)' if spinning else ''}"] = forward.open(2)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=60, help="calls per configuration and size")
    parser.add_argument("--load", type=int, default=0, help="busy background processes while timing")
    parser.add_argument("--sizes", default="1 query,4 queries,43 queries,32 passages", help="comma-separated calls")
    parser.add_argument("--name", default=None)
    args = parser.parse_args()
    started = time.time()
    quiet_torch(2)
    queries = list(read_queries(dl19_dir() / "queries.tsv").values())
    passages = [d.contents for d in itertools.islice(read_corpus(dl19_dir() / "collection.tsv"), 32)]
    sizes = {"1 query": (queries[:1], "query"), "4 queries": (queries[1:5], "query"),
             "43 queries": (queries, "query"), "32 passages": (passages, "passage")}  # fmt: skip
    load = start_load(args.load)
    sizes = {name: sizes[name] for name in args.sizes.split(",")}
    rows = []
    try:
        for backend, quantize in EXPORTS:
            encoder = BiEncoder("default", precision="fp32", inference=Inference(backend=backend, quantize=quantize))
            forward = encoder.runner.forward
            variants = engines(forward, backend == "onnx")
            for size, (texts, role) in sizes.items():
                encoded, _, _ = encoder._tokenize(texts, role)
                batch = right_padded(encoded, list(range(len(texts))), 0, encoder.device)  # one call
                arrays = {name: batch[name].numpy() for name in forward.input_names}
                times: dict[str, list[float]] = {name: [] for name in variants}
                order = list(variants)
                for call in range(args.calls):
                    for name in order if call % 2 == 0 else order[::-1]:
                        began = time.perf_counter()
                        forward.run(variants[name], arrays)
                        times[name].append(time.perf_counter() - began)
                tokens = int(np.prod(arrays["input_ids"].shape))
                for name, values in times.items():
                    rows.append(
                        {
                            "backend": f"{backend} {quantize}",
                            "call": size,
                            "padded tokens": tokens,
                            "engine": name,
                            "ms per call (median)": round(1000 * median(values), 2),
                        }
                    )
                    print(rows[-1], flush=True)
    finally:
        stop_load(load)
    save_result(
        args.name or ("backend_threads" + ("-loaded" if args.load else "")),
        rows,
        title="Threads per call of an exported MiniLM: one or two"
        + (f", beside {args.load} busy processes" if args.load else ", quiet"),
        params={"calls": args.calls, "load": args.load},
        notes=[
            "The model's forward pass only (ONNX Runtime session.run / OpenVINO infer), on inputs padded as rankkit pads them.",
            "All engines of one backend interleaved call by call in ABBA order; median over calls.",
            f"--load: {args.load} processes each multiplying 384x384 matrices on one BLAS thread.",
        ],
        started=started,
    )


if __name__ == "__main__":
    main()
