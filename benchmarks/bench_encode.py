"""Encoding throughput: rankkit's BiEncoder.encode vs sentence-transformers' encode, same model,
same texts, same threads.

Cases (all on dl19): the first N passages; the 43 queries in one call; the 43 queries one per call.
Both systems run in this one process, interleaved in small blocks in ABBA order (rankkit, ST, ST,
rankkit, ...), so a load spike from other work on the machine hits both; each repetition's
throughput is the block times summed, and the table gives the median over repetitions.

    .venv/bin/python benchmarks/bench_encode.py            # N=2000, 3 repetitions
    .venv/bin/python benchmarks/bench_encode.py --sweep    # also try other max_tokens / max_batch_size
"""

from __future__ import annotations

import argparse
import itertools
import os
import time

# like the `rankkit` CLI: no tokenizer thread pool competing with torch's threads (set for both systems)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import dl19_dir, median, quiet_torch, save_result  # noqa: E402

from rankkit.data.corpus import read_corpus  # noqa: E402
from rankkit.data.queries import read_queries  # noqa: E402
from rankkit.encode.batching import length_sorted_batches  # noqa: E402
from rankkit.encode.biencoder import BiEncoder  # noqa: E402
from rankkit.encode.models import resolve_model_dir  # noqa: E402

ST_BATCH_SIZE = 32


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="passages: the first N of dl19 (default 2000)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per case; the median is reported")
    parser.add_argument(
        "--block", type=int, default=250, help="passages per encode call; the systems alternate per block (default 250)"
    )
    parser.add_argument(
        "--query-calls",
        type=int,
        default=10,
        help="'43 queries in one call': calls per system per repetition (default 10)",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads for both systems (default 2)")
    parser.add_argument("--model", default="default", help="model (default: packaged all-MiniLM-L6-v2)")
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="also time BiEncoder max_tokens/max_batch_size settings (on --sweep-n passages)",
    )
    parser.add_argument("--sweep-n", type=int, default=1000)
    parser.add_argument(
        "--sweep-configs",
        default="1024:32,2048:64,4096:64,4096:128,8192:256",
        help="comma-separated max_tokens:max_batch_size pairs",
    )
    parser.add_argument("--name", default="encode", help="results name (benchmarks/results/NAME.json|md)")
    return parser.parse_args()


class Timer:
    """Wall and process CPU seconds accumulated per system."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def run(self, system: str, fn, *args):
        c0, t0 = time.process_time(), time.perf_counter()
        result = fn(*args)
        self.wall[system] = self.wall.get(system, 0.0) + time.perf_counter() - t0
        self.cpu[system] = self.cpu.get(system, 0.0) + time.process_time() - c0
        return result


def abba(systems: list[str], step: int) -> list[str]:
    """The order for step `step`: forward on even steps, reversed on odd ones (ABBA ABBA ...)."""
    return systems if step % 2 == 0 else systems[::-1]


def time_case(encoders: dict, calls: list[list[str]], reps: int, offset: int = 0) -> dict[str, dict[str, list]]:
    """Run every call for every system, interleaved ABBA; per repetition, the summed wall and CPU time
    and the outputs of the last repetition (concatenated)."""
    systems = list(encoders)
    wall = {s: [] for s in systems}
    cpu = {s: [] for s in systems}
    outputs: dict[str, list] = {}
    step = offset
    for _ in range(reps):
        timer = Timer()
        outputs = {s: [] for s in systems}
        for texts in calls:
            for system in abba(systems, step):
                outputs[system].append(timer.run(system, encoders[system], texts))
            step += 1
        for system in systems:
            wall[system].append(timer.wall[system])
            cpu[system].append(timer.cpu[system])
    return {s: {"wall": wall[s], "cpu": cpu[s], "vectors": np.concatenate(outputs[s])} for s in systems}


def main() -> None:
    args = parse_args()
    started = time.time()
    quiet_torch(args.threads)
    from sentence_transformers import SentenceTransformer

    data = dl19_dir()
    passages = [d.contents for d in itertools.islice(read_corpus(data / "collection.tsv"), args.n)]
    queries = list(read_queries(data / "queries.tsv").values())
    model_dir = resolve_model_dir(args.model)
    rk = BiEncoder(args.model, device="cpu")
    st = SentenceTransformer(str(model_dir), device="cpu")
    if st.max_seq_length != rk.max_length:
        raise SystemExit(f"max length differs: sentence-transformers {st.max_seq_length}, rankkit {rk.max_length}")
    lengths = [len(ids) for ids in rk.tokenizer(passages, truncation=True, max_length=rk.max_length)["input_ids"]]
    qlengths = [len(ids) for ids in rk.tokenizer(queries)["input_ids"]]
    print(
        f"{len(passages)} passages (mean {np.mean(lengths):.1f} tokens, max {max(lengths)}), {len(queries)} "
        f"queries (mean {np.mean(qlengths):.1f} tokens); torch threads {torch.get_num_threads()}; "
        f"rankkit max_tokens={rk.max_tokens} max_batch_size={rk.max_batch_size}; ST batch_size={ST_BATCH_SIZE}"
    )

    encoders = {
        "rankkit": lambda texts: rk.encode(texts),
        "sentence-transformers": lambda texts: st.encode(
            texts, batch_size=ST_BATCH_SIZE, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        ),
    }
    for encode in encoders.values():  # warm-up: allocator, kernels, tokenizer caches
        encode(passages[:128])
        encode(queries)
        for query in queries[:5]:
            encode([query])

    blocks = [passages[i : i + args.block] for i in range(0, len(passages), args.block)]
    cases = [
        (
            "passages",
            f"first {len(passages)} dl19 passages, {len(blocks)} calls of <= {args.block}",
            blocks,
            len(passages),
        ),
        (
            "queries (batch)",
            f"43 dl19 queries in one call, x{args.query_calls} calls",
            [queries] * args.query_calls,
            len(queries) * args.query_calls,
        ),
        ("queries (one per call)", "43 dl19 queries, one call each", [[q] for q in queries], len(queries)),
    ]
    rows, diffs = [], {}
    for offset, (case, description, calls, count) in enumerate(cases):
        print(f"timing {case}: {description}, {args.reps} repetitions ...", flush=True)
        timed = time_case(encoders, calls, args.reps, offset)
        rk_t, st_t = timed["rankkit"], timed["sentence-transformers"]
        rk_rates = [count / w for w in rk_t["wall"]]
        st_rates = [count / w for w in st_t["wall"]]
        a, b = rk_t["vectors"], st_t["vectors"]
        diff = float(np.abs(a - b).max())
        cosine = float(np.min(np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))))
        diffs[case] = diff
        print(f"  max abs diff rankkit vs ST: {diff:.3g} (min cosine {cosine:.7f})")
        rows.append(
            {
                "case": case,
                "texts": count,
                "rankkit texts/s": median(rk_rates),
                "ST texts/s": median(st_rates),
                "ratio rankkit/ST": median(rk_rates) / median(st_rates),
                "paired ratio (median of reps)": median(r / s for r, s in zip(rk_rates, st_rates)),
                "rankkit CPU ms/text": 1000 * median(rk_t["cpu"]) / count,
                "ST CPU ms/text": 1000 * median(st_t["cpu"]) / count,
                "max abs diff": diff,
                "min cosine": cosine,
                "rankkit reps texts/s": ", ".join(f"{r:.1f}" for r in rk_rates),
                "ST reps texts/s": ", ".join(f"{r:.1f}" for r in st_rates),
            }
        )

    padding = {name: padded_tokens(rk, texts) for name, texts in (("passages", passages), ("queries", queries))}
    extra = {}
    if args.sweep:
        extra["BiEncoder max_tokens:max_batch_size sweep"] = sweep(args, rk, st, passages, queries)

    notes = [
        "Same model folder for both ("
        + str(model_dir)
        + "), same texts, torch.set_num_threads("
        + str(args.threads)
        + "), TOKENIZERS_PARALLELISM="
        + os.environ.get("TOKENIZERS_PARALLELISM", "")
        + ".",
        "Systems interleaved per call in ABBA order; each repetition sums a system's call times; "
        "texts/s is the median over repetitions; ratio target >= 1.0, goal 1.3.",
        f"sentence-transformers: encode(batch_size={ST_BATCH_SIZE}, normalize_embeddings=True); rankkit: "
        f"BiEncoder.encode with max_tokens={rk.max_tokens}, max_batch_size={rk.max_batch_size} (length-sorted "
        "token-budget batches).",
        "CPU ms/text is process CPU time (both torch threads), less sensitive to other load than wall time.",
        "max abs diff / min cosine: rankkit vs ST embeddings of the same texts (last repetition).",
        "Tokens computed (real tokens / with padding) for one call: "
        + "; ".join(
            f"{name}: {p['real']} real, rankkit {p['rankkit']} in {p['rankkit_batches']} batches, ST "
            f"{p['st']} in {p['st_batches']}"
            for name, p in padding.items()
        )
        + ". On the 43 queries the token budget puts all of them in one batch padded to the longest, where "
        "ST's batches of 32 pad less: query batches have no padding to save, so no edge to expect.",
    ]
    params = {
        "n": args.n,
        "reps": args.reps,
        "block": args.block,
        "query_calls": args.query_calls,
        "threads": args.threads,
        "model": args.model,
        "st_batch_size": ST_BATCH_SIZE,
        "rankkit_max_tokens": rk.max_tokens,
        "rankkit_max_batch_size": rk.max_batch_size,
    }
    save_result(
        args.name,
        rows,
        title="Encoding throughput: rankkit BiEncoder vs sentence-transformers",
        params=params,
        notes=notes,
        extra_tables=extra,
        started=started,
    )


def padded_tokens(rk: BiEncoder, texts: list[str]) -> dict[str, int]:
    """Tokens one encode call computes, without and with padding, for rankkit's token-budget
    batches and for ST's length-sorted batches of ST_BATCH_SIZE."""
    lengths = rk.token_lengths(texts)
    batches = list(length_sorted_batches(lengths, rk.max_tokens, rk.max_batch_size))
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    st_batches = [order[i : i + ST_BATCH_SIZE] for i in range(0, len(order), ST_BATCH_SIZE)]
    padded = lambda groups: sum(len(b) * max(lengths[i] for i in b) for b in groups)  # noqa: E731
    return {
        "real": sum(lengths),
        "rankkit": padded(batches),
        "rankkit_batches": len(batches),
        "st": padded(st_batches),
        "st_batches": len(st_batches),
    }


def sweep(args, rk: BiEncoder, st, passages: list[str], queries: list[str]) -> list[dict]:
    """Throughput of BiEncoder settings, each interleaved with the others (and ST as a yardstick)."""
    configs = [tuple(int(x) for x in pair.split(":")) for pair in args.sweep_configs.split(",")]
    subset = passages[: args.sweep_n]
    blocks = [subset[i : i + args.block] for i in range(0, len(subset), args.block)]
    saved = (rk.max_tokens, rk.max_batch_size)

    def with_config(max_tokens: int, max_batch_size: int):
        def encode(texts):
            rk.max_tokens, rk.max_batch_size = max_tokens, max_batch_size
            return rk.encode(texts)

        return encode

    encoders = {f"{t}:{b}": with_config(t, b) for t, b in configs}
    encoders["ST"] = lambda texts: st.encode(
        texts, batch_size=ST_BATCH_SIZE, normalize_embeddings=True, show_progress_bar=False
    )
    print(f"sweep: {len(configs)} settings on {len(subset)} passages and the 43 queries, {args.reps} repetitions")
    p = time_case(encoders, blocks, args.reps)
    q = time_case(encoders, [queries] * args.query_calls, args.reps, 1)
    rk.max_tokens, rk.max_batch_size = saved
    rows = []
    for name in encoders:
        rows.append(
            {
                "max_tokens:max_batch_size": name,
                "passages texts/s": median(len(subset) / w for w in p[name]["wall"]),
                "passages CPU ms/text": 1000 * median(p[name]["cpu"]) / len(subset),
                "queries texts/s": median(len(queries) * args.query_calls / w for w in q[name]["wall"]),
                "queries CPU ms/text": 1000 * median(q[name]["cpu"]) / (len(queries) * args.query_calls),
            }
        )
    return rows


if __name__ == "__main__":
    main()
