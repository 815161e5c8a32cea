"""fp32 vs bf16 on this CPU: the ceiling of a bare matrix product in each precision (MiniLM's
feed-forward shape), and rankkit's BiEncoder encoding dl19 passages in each precision (texts/s,
achieved GFLOP/s, and how close the bf16 vectors are to the fp32 ones: cosine, and the overlap
of each query's dense top-50 over those passages).

The anchor is fp32: every ratio is bf16 / fp32 measured in the same run (interleaved ABBA).

    .venv/bin/python benchmarks/bench_precision.py               # 2,000 passages, 3 repetitions
    .venv/bin/python benchmarks/bench_precision.py --docs 200 --reps 1 --name precision-smoke
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import dl19_dir, median, quiet_torch, save_result  # noqa: E402

from rankkit.data.corpus import read_corpus  # noqa: E402
from rankkit.data.queries import read_queries  # noqa: E402
from rankkit.encode.biencoder import BiEncoder  # noqa: E402
from rankkit.encode.precision import bf16_supported  # noqa: E402

PRECISIONS = ("fp32", "bf16")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=2000, help="dl19 passages to encode (default 2,000)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per precision (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--model", default="default", help="model (default: packaged all-MiniLM-L6-v2)")
    parser.add_argument("--name", default="precision", help="results name (default precision)")
    return parser.parse_args()


def matmul_gflops(dtype: torch.dtype, rows: int = 4096, inner: int = 384, cols: int = 1536, reps: int = 20) -> float:
    """GFLOP/s of [rows x inner] @ [inner x cols]: MiniLM-L6's feed-forward shape."""
    a, b = torch.randn(rows, inner, dtype=dtype), torch.randn(inner, cols, dtype=dtype)
    a @ b  # warm-up
    started = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * rows * inner * cols * reps / (time.perf_counter() - started) / 1e9


def model_flops(encoder: BiEncoder, texts: list[str]) -> float:
    """FLOPs of one forward pass over `texts` as rankkit tokenises them: the linear layers per token
    plus attention's two [tokens x tokens] products per layer (embeddings and norms left out)."""
    config = encoder.model.config
    d, ff, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    lengths = [
        len(ids)
        for ids in encoder.tokenizer(
            texts, truncation=True, max_length=encoder.max_length, return_attention_mask=False
        )["input_ids"]
    ]
    linear = 2 * layers * (4 * d * d + 2 * d * ff) * sum(lengths)
    attention = 2 * layers * 2 * d * sum(n * n for n in lengths)
    return float(linear + attention)


def main() -> None:
    args = parse_args()
    started = time.time()
    quiet_torch(args.threads)
    cpu = torch.device("cpu")
    if not bf16_supported(cpu):
        raise SystemExit("this CPU has no native bfloat16: nothing to compare")
    data = dl19_dir()
    texts = [d.contents for _, d in zip(range(args.docs), read_corpus(data / "collection.tsv"))]
    queries = list(read_queries(data / "queries.tsv").values())
    encoders = {p: BiEncoder(args.model, device="cpu", precision=p) for p in PRECISIONS}
    flops = model_flops(encoders["fp32"], texts)

    peaks = {p: [] for p in PRECISIONS}
    walls = {p: [] for p in PRECISIONS}
    vectors: dict[str, np.ndarray] = {}
    for p in PRECISIONS:  # warm-up
        encoders[p].encode(texts[:64])
    for step in range(args.reps):
        for p in PRECISIONS if step % 2 == 0 else PRECISIONS[::-1]:
            peaks[p].append(matmul_gflops(torch.float32 if p == "fp32" else torch.bfloat16))
            t0 = time.perf_counter()
            vectors[p] = encoders[p].encode(texts)
            walls[p].append(time.perf_counter() - t0)
            print(f"  {p}: matmul {peaks[p][-1]:.0f} GFLOP/s, encode {walls[p][-1]:.1f} s", flush=True)

    cosine = (vectors["fp32"] * vectors["bf16"]).sum(1)
    q32, q16 = encoders["fp32"].encode(queries), encoders["bf16"].encode(queries)
    depth = min(50, len(texts))
    top32 = np.argsort(-(q32 @ vectors["fp32"].T), axis=1)[:, :depth]
    top16 = np.argsort(-(q16 @ vectors["bf16"].T), axis=1)[:, :depth]
    overlap = [len(set(a) & set(b)) / depth for a, b in zip(top32, top16)]
    rows = []
    for p in PRECISIONS:
        wall = median(walls[p])
        rows.append(
            {
                "precision": p,
                "matmul GFLOP/s (median)": median(peaks[p]),
                "encode s (median)": wall,
                "passages/s": len(texts) / wall,
                "encoder GFLOP/s": flops / wall / 1e9,
                "share of matmul peak": flops / wall / 1e9 / median(peaks[p]),
                "speed-up vs fp32": median(walls["fp32"]) / wall,
                "reps s": ", ".join(f"{w:.2f}" for w in walls[p]),
            }
        )
    fidelity = [
        {
            "measure": "cosine(bf16 vector, fp32 vector), min / median",
            "value": f"{cosine.min():.6f} / {np.median(cosine):.6f}",
        },
        {
            "measure": f"top-{depth} overlap per query over these passages, mean / min ({len(queries)} queries)",
            "value": f"{np.mean(overlap):.4f} / {np.min(overlap):.4f}",
        },
    ]
    notes = [
        f"{len(texts):,} dl19 passages (the first in collection.tsv), {flops / 1e12:.2f} TFLOP per encode "
        f"(linear layers + attention products of the model's forward pass at rankkit's tokenisation).",
        "bf16: the model's weights cast to bfloat16 (BiEncoder(precision='bf16')); hidden states pooled and "
        "normalised in float32. matmul: a [4096 x 384] @ [384 x 1536] product (MiniLM's feed-forward shape).",
        "Repetitions interleaved ABBA; the share of matmul peak compares the encoder's useful FLOP/s with the "
        "bare product's in the same precision.",
    ]
    params = {"docs": len(texts), "reps": args.reps, "threads": args.threads, "model": args.model}
    save_result(
        args.name,
        rows,
        title="fp32 vs bf16: matrix-product ceiling and MiniLM encoding (dl19 passages)",
        params=params,
        notes=notes,
        extra_tables={"bf16 fidelity": fidelity},
        started=started,
    )


if __name__ == "__main__":
    main()
