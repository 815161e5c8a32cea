"""The per-batch cost of rankkit's length-sorted batching (rankkit.encode.batching.BATCH_COST),
chosen by measurement: BiEncoder throughput on DL19 passages and on batches of the 43 DL19
queries for several costs (0: no padding at all, up to a cost so high that batches are as few
as the token budget allows), on PyTorch fp32 and on the int8 backends, interleaved ABBA per call
in one process.

    .venv/bin/python benchmarks/bench_batch_cost.py --costs 0,8,32,128,100000
"""

from __future__ import annotations

import argparse
import itertools
import os
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench_encode import time_case  # noqa: E402
from common import dl19_dir, median, quiet_torch, save_result  # noqa: E402

from rankkit.data.corpus import read_corpus  # noqa: E402
from rankkit.data.queries import read_queries  # noqa: E402
from rankkit.encode.batching import BATCH_COST, length_sorted_batches  # noqa: E402
from rankkit.encode.biencoder import BiEncoder  # noqa: E402
from rankkit.options import Inference  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--costs", default="0,8,32,128,100000")
    parser.add_argument("--backends", default="torch:none,onnx:int8,openvino:int8")
    parser.add_argument("--n", type=int, default=1000, help="dl19 passages")
    parser.add_argument("--block", type=int, default=250, help="passages per call")
    parser.add_argument("--query-calls", type=int, default=10)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--name", default="batch_cost")
    args = parser.parse_args()
    started = time.time()
    quiet_torch(args.threads)
    passages = [d.contents for d in itertools.islice(read_corpus(dl19_dir() / "collection.tsv"), args.n)]
    queries = list(read_queries(dl19_dir() / "queries.tsv").values())
    costs = [int(c) for c in args.costs.split(",")]
    rows = []
    for spec in args.backends.split(","):
        backend, quantize = spec.split(":")
        inference = Inference(backend=backend, quantize=quantize)  # type: ignore[arg-type]
        encoder = BiEncoder("default", precision="fp32", inference=inference)

        def with_cost(cost: int):
            def encode(texts):
                encoder.batch_cost = cost
                return encoder.encode(texts, role="query" if len(texts) == len(queries) else "passage")

            return encode

        encoders = {str(cost): with_cost(cost) for cost in costs}
        for encode in encoders.values():  # warm-up
            encode(passages[:64])
            encode(queries)
        blocks = [passages[i : i + args.block] for i in range(0, len(passages), args.block)]
        timed_passages = time_case(encoders, blocks, args.reps)
        timed_queries = time_case(encoders, [queries] * args.query_calls, args.reps, 1)
        for cost in costs:
            name = str(cost)
            query_lengths = encoder.token_lengths(queries, "query")
            batches = list(length_sorted_batches(query_lengths, encoder.max_tokens, encoder.max_batch_size, cost))
            rows.append(
                {
                    "backend": spec,
                    "batch cost": cost,
                    "passages/s": median(len(passages) / w for w in timed_passages[name]["wall"]),
                    "query batches: queries/s": median(
                        len(queries) * args.query_calls / w for w in timed_queries[name]["wall"]
                    ),
                    "query batches (43 queries)": len(batches),
                    "query padded tokens": sum(len(b) * max(query_lengths[i] for i in b) for b in batches),
                }
            )
            print(rows[-1], flush=True)
    save_result(
        args.name,
        rows,
        title="The per-batch cost of length-sorted batching",
        params={**vars(args), "default": BATCH_COST},
        notes=[
            "All of one backend's costs in one process, interleaved per call in ABBA order; medians over repetitions.",
            "Query batches: the 43 DL19 queries in one call; their real token count is the padded count at cost 0.",
        ],
        started=started,
    )


if __name__ == "__main__":
    main()
