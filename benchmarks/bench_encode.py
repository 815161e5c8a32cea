"""Encoding throughput: rankkit's BiEncoder.encode vs sentence-transformers' encode, same model,
same texts, same threads.

Cases (all on dl19): the first N passages; the 43 queries in one call; the 43 queries one per call.
Both systems run in this one process, interleaved in small blocks in ABBA order (rankkit, ST, ST,
rankkit, ...), so a load spike from other work on the machine hits both; each repetition's
throughput is the block times summed, and the table gives the median over repetitions.

    .venv/bin/python benchmarks/bench_encode.py            # N=2000, 3 repetitions
    .venv/bin/python benchmarks/bench_encode.py --sweep    # also try other max_tokens / max_batch_size

--backends: inference backends, each system in its own worker process (benchmarks/encode_workers.py):
rankkit {torch fp32, onnx, onnx int8, openvino, openvino int8} under .venv against sentence-transformers
{torch, onnx, onnx O3, onnx O4, onnx int8, openvino, openvino int8} under .venv-st (made by
`make setup-bench`). Same cases (N=1000 by default); the workers take each call in ABBA order; texts/s,
CPU ms per text, and each system's min cosine and top-10 overlap against rankkit torch fp32, with the
quality gate of rankkit.options. --load N adds N busy processes for the timed part.

    .venv/bin/python benchmarks/bench_encode.py --backends --reps 5 --name encode_backends
    .venv/bin/python benchmarks/bench_encode.py --backends --reps 5 --load 2 --name encode_backends-loaded
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# like the `rankkit` CLI: no tokenizer thread pool competing with torch's threads (set for both systems)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import REPO_ROOT, dl19_dir, median, quiet_torch, save_result  # noqa: E402
from encode_workers import REFERENCE, ST_BATCH_SIZE, SYSTEMS, cpu_flags, onnx_int8_config  # noqa: E402

from rankkit.data.corpus import read_corpus  # noqa: E402
from rankkit.data.queries import read_queries  # noqa: E402
from rankkit.encode.batching import length_sorted_batches  # noqa: E402
from rankkit.encode.biencoder import BiEncoder  # noqa: E402
from rankkit.encode.models import model_fingerprint, resolve_model_dir  # noqa: E402
from rankkit.options import GATE_MIN_COSINE, GATE_MIN_OVERLAP  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--n", type=int, default=None, help="passages: the first N of dl19 (default 2000; with --backends 1000)"
    )
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
    parser.add_argument(
        "--name", default=None, help="results name (benchmarks/results/NAME.json|md; default encode, encode_backends)"
    )
    backends = parser.add_argument_group("--backends: inference backends, one worker process per system")
    backends.add_argument("--backends", action="store_true", help="time the backends (see above)")
    backends.add_argument(
        "--systems",
        default=",".join(SYSTEMS),
        help="comma-separated systems (default all): " + ", ".join(SYSTEMS) + f"; {REFERENCE} is always run",
    )
    backends.add_argument("--load", type=int, default=0, help="busy background processes while timing (default 0)")
    backends.add_argument(
        "--gap-ms", type=float, default=10, help="pause between calls, so one worker's idle threads stop spinning"
    )
    backends.add_argument(
        "--calibration-start", type=int, default=1000, help="int8 calibration: dl19 passages from this one (1000)"
    )
    backends.add_argument("--calibration-n", type=int, default=300, help="int8 calibration passages (default 300)")
    args = parser.parse_args()
    args.n = args.n or (1000 if args.backends else 2000)
    args.name = args.name or ("encode_backends" if args.backends else "encode")
    return args


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
    if args.backends:
        run_backends(args)
        return
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


# --- --backends: inference backends, one worker process per system -------------------------------

WORK_DIR = REPO_ROOT / "work" / "bench-encode"
ST_PYTHON = REPO_ROOT / ".venv-st" / "bin" / "python"
WORKER_SCRIPT = Path(__file__).resolve().parent / "encode_workers.py"
# a busy process for --load: one BLAS thread multiplying the same matrices for ever
LOAD_CODE = """
import numpy as np
a = np.random.default_rng(0).random((384, 384))
b = a.copy()
while True:
    np.dot(a, a, out=b)
"""
SINGLE_THREAD_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class Worker:
    """One system's worker process (benchmarks/encode_workers.py) and its JSON-lines protocol."""

    def __init__(self, key: str, command: list[str], env: dict[str, str], log: Path):
        self.key, self.system, self.log = key, SYSTEMS[key], log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log, "w")
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=env,
            cwd=REPO_ROOT,
        )
        self.hello = self._receive()
        self.error = None if self.hello.get("ready") else self.hello.get("error", "failed to load")
        if self.error:
            self.close()

    def _receive(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            return {"ready": False, "error": f"worker exited with status {self.process.returncode}: {self.tail()}"}
        return json.loads(line)

    def tail(self, lines: int = 15) -> str:
        self._log.flush()
        return " | ".join(self.log.read_text(errors="replace").strip().splitlines()[-lines:])

    def encode(self, texts: list[str], role: str, out: Path | None = None) -> dict:
        self.process.stdin.write(json.dumps({"texts": texts, "role": role, "out": str(out) if out else None}) + "\n")
        self.process.stdin.flush()
        reply = self._receive()
        if "wall" not in reply:
            raise SystemExit(f"{self.key}: worker failed during a call ({reply.get('error')}); log: {self.log}")
        return reply

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.close()
                self.process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        self._log.close()


def start_load(count: int) -> list[subprocess.Popen]:
    """`count` busy single-threaded processes at the default priority (the competing load)."""
    env = {**os.environ, **SINGLE_THREAD_ENV}
    return [
        subprocess.Popen([sys.executable, "-c", LOAD_CODE], env=env, stdout=subprocess.DEVNULL) for _ in range(count)
    ]


def stop_load(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def env_versions(python: Path) -> dict[str, str | None]:
    """Package versions of the environment `python` runs in (encode_workers.env_versions there)."""
    code = "import json, encode_workers; print(json.dumps(encode_workers.env_versions()))"
    done = subprocess.run(
        [str(python), "-c", code], cwd=WORKER_SCRIPT.parent, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def st_model_copy(model_dir: Path) -> Path:
    """The benchmark's copy of the model folder, where sentence-transformers writes its exports (never
    into the package's folder); one per model fingerprint."""
    target = WORK_DIR / "st-models" / model_fingerprint(model_dir)
    if not (target / "modules.json").exists():
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(model_dir, partial, ignore=shutil.ignore_patterns("onnx", "openvino"))
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
    return target


def top10_overlap(ref_q: np.ndarray, ref_p: np.ndarray, q: np.ndarray, p: np.ndarray) -> float:
    """Mean share of fp32's top 10 passages (per query) that the system's vectors also rank in their top 10."""
    top = min(10, len(ref_p))
    ref_top = np.argsort(-(ref_q @ ref_p.T), axis=1, kind="stable")[:, :top]
    sys_top = np.argsort(-(q @ p.T), axis=1, kind="stable")[:, :top]
    return float(np.mean([len(set(a) & set(b)) / top for a, b in zip(ref_top, sys_top)]))


def min_cosine(reference: np.ndarray, vectors: np.ndarray) -> float:
    a, b = reference.astype(np.float64), vectors.astype(np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float(np.min(np.einsum("ij,ij->i", a, b) / np.maximum(norms, 1e-12)))


@dataclass
class Case:
    key: str
    title: str
    calls: list[list[str]]
    role: str
    count: int  # texts encoded per repetition
    kept: int  # the first `kept` calls' vectors make the case's vectors


def time_backends(workers: dict[str, Worker], case: Case, reps: int, step: int, gap: float, vector_dir: Path):
    """Every call of `case` on every worker, systems in ABBA order per call; per repetition, each
    system's summed wall and CPU seconds; the vectors of the last repetition. Returns (timings, step)."""
    keys = list(workers)
    timings = {k: {"wall": [], "cpu": []} for k in keys}
    for rep in range(reps):
        wall, cpu = dict.fromkeys(keys, 0.0), dict.fromkeys(keys, 0.0)
        for index, texts in enumerate(case.calls):
            for key in abba(keys, step):
                out = vector_dir / key / f"{case.key}-{index}.npy" if rep == reps - 1 and index < case.kept else None
                reply = workers[key].encode(texts, case.role, out)
                wall[key] += reply["wall"]
                cpu[key] += reply["cpu"]
                time.sleep(gap)
            step += 1
        for key in keys:
            timings[key]["wall"].append(wall[key])
            timings[key]["cpu"].append(cpu[key])
    for key in keys:
        timings[key]["vectors"] = np.concatenate(
            [np.load(vector_dir / key / f"{case.key}-{i}.npy") for i in range(case.kept)]
        )
    return timings, step


def run_backends(args: argparse.Namespace) -> None:
    started = time.time()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    if not ST_PYTHON.exists():
        raise SystemExit(
            f"--backends needs the sentence-transformers environment {ST_PYTHON.parent.parent} "
            "(sentence-transformers with optimum[onnxruntime] and optimum-intel[openvino], which rankkit's "
            "transformers cannot run). Fix: run `make setup-bench`"
        )
    keys = [k.strip() for k in args.systems.split(",") if k.strip()]
    unknown = [k for k in keys if k not in SYSTEMS]
    if unknown:
        raise SystemExit(f"unknown systems {unknown}; choose from {', '.join(SYSTEMS)}")
    keys = [REFERENCE] + [k for k in dict.fromkeys(keys) if k != REFERENCE]

    data = dl19_dir()
    documents = [d.contents for d in itertools.islice(read_corpus(data / "collection.tsv"), args.n)]
    cal_end = args.calibration_start + args.calibration_n
    calibration = [
        d.contents for d in itertools.islice(read_corpus(data / "collection.tsv"), args.calibration_start, cal_end)
    ]
    queries = list(read_queries(data / "queries.tsv").values())
    model_dir = resolve_model_dir(args.model)
    tag = f"dl19-{args.calibration_start}-{args.calibration_start + len(calibration)}"
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    calibration_file = WORK_DIR / f"calibration-{tag}.json"
    calibration_file.write_text(json.dumps(calibration))
    st_folder = st_model_copy(model_dir)
    rankkit_cache = WORK_DIR / "rankkit-cache" / tag  # exports calibrated on these passages, not on earlier ones
    vector_dir, log_dir = WORK_DIR / "vectors" / args.name, WORK_DIR / "logs" / args.name
    shutil.rmtree(vector_dir, ignore_errors=True)
    for key in keys:
        (vector_dir / key).mkdir(parents=True)
    versions = {"rankkit env (.venv)": env_versions(Path(sys.executable)), "ST env (.venv-st)": env_versions(ST_PYTHON)}

    base_env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    workers: dict[str, Worker] = {}
    failed: dict[str, str] = {}
    load: list[subprocess.Popen] = []
    try:
        for key in keys:  # one at a time: exports write into shared folders, and loading is timed apart
            system = SYSTEMS[key]
            python = Path(sys.executable) if system.side == "rankkit" else ST_PYTHON
            command = [
                str(python),
                str(WORKER_SCRIPT),
                f"--system={key}",
                f"--threads={args.threads}",
                f"--model={args.model}",
                f"--st-folder={st_folder}",
                f"--calibration={calibration_file}",
                f"--calibration-tag={tag.replace('-', '_')}",
            ]
            env = {**base_env, "RANKKIT_CACHE": str(rankkit_cache)} if system.side == "rankkit" else base_env
            print(f"starting {system.label} ...", flush=True)
            worker = Worker(key, command, env, log_dir / f"{key}.log")
            if worker.error:
                print(f"  {system.label}: not available: {worker.error}", flush=True)
                failed[key] = worker.error
                if key == REFERENCE:
                    raise SystemExit(f"the reference {system.label} failed to load: {worker.error}")
                continue
            print(f"  loaded in {worker.hello['load_s']} s: {json.dumps(worker.hello['describe'])}", flush=True)
            workers[key] = worker
        for key, worker in workers.items():  # warm-up: allocator, kernels, OpenVINO's shape caches
            worker.encode(calibration[:128], "passage")
            worker.encode(queries, "query")
            for query in queries[:5]:
                worker.encode([query], "query")

        blocks = [documents[i : i + args.block] for i in range(0, len(documents), args.block)]
        cases = [
            Case(
                "passages",
                f"passages: first {len(documents)} dl19 passages, {len(blocks)} calls of <= {args.block}",
                blocks,
                "passage",
                len(documents),
                len(blocks),
            ),
            Case(
                "queries-batch",
                f"query batches: the 43 dl19 queries in one call, x{args.query_calls} calls",
                [queries] * args.query_calls,
                "query",
                len(queries) * args.query_calls,
                1,
            ),
            Case(
                "queries-single",
                "single queries: the 43 dl19 queries, one call each",
                [[q] for q in queries],
                "query",
                len(queries),
                len(queries),
            ),
        ]
        load_timed_start = [round(x, 2) for x in os.getloadavg()]
        load = start_load(args.load)
        if load:
            print(f"competing load: {len(load)} busy processes (pids {[p.pid for p in load]})", flush=True)
            time.sleep(2)
        timed, step = {}, 0
        for case in cases:
            print(f"timing {case.title}, {args.reps} repetitions, {len(workers)} systems ...", flush=True)
            timed[case.key], step = time_backends(workers, case, args.reps, step, args.gap_ms / 1000, vector_dir)
        stop_load(load)
        load_timed_end = [round(x, 2) for x in os.getloadavg()]
    finally:
        stop_load(load)
        for worker in workers.values():
            worker.close()

    tables, summary = {}, []
    for case in cases:
        t = timed[case.key]
        ref = t[REFERENCE]
        ref_rate = median(case.count / w for w in ref["wall"])
        queries_key = "queries-single" if case.key == "queries-single" else "queries-batch"
        rows = []
        for key in keys:
            label = SYSTEMS[key].label
            if key in failed:
                rows.append({"system": label, "note": f"not available: {failed[key]}"})
                continue
            rates = [case.count / w for w in t[key]["wall"]]
            cosine = min_cosine(ref["vectors"], t[key]["vectors"])
            overlap = top10_overlap(
                timed[queries_key][REFERENCE]["vectors"],
                timed["passages"][REFERENCE]["vectors"],
                timed[queries_key][key]["vectors"],
                timed["passages"][key]["vectors"],
            )
            rows.append(
                {
                    "system": label,
                    "texts/s": median(rates),
                    "ratio to rankkit torch fp32": median(rates) / ref_rate,
                    "CPU ms/text": 1000 * median(t[key]["cpu"]) / case.count,
                    "min cosine": cosine,
                    "top-10 overlap": overlap,
                    "passes gate": "yes" if cosine >= GATE_MIN_COSINE and overlap >= GATE_MIN_OVERLAP else "no",
                    "reps texts/s": ", ".join(f"{r:.1f}" for r in rates),
                }
            )
        tables[case.title] = rows
        best = {}
        for side in ("rankkit", "st"):
            passing = [
                (row["texts/s"], row["system"])
                for key, row in zip(keys, rows)
                if SYSTEMS[key].side == side and row.get("passes gate") == "yes"
            ]
            best[side] = max(passing) if passing else None
        ratio = best["rankkit"][0] / best["st"][0] if best["rankkit"] and best["st"] else None
        summary.append(
            {
                "case": case.key,
                "rankkit fastest passing": best["rankkit"][1] if best["rankkit"] else "none",
                "rankkit texts/s": best["rankkit"][0] if best["rankkit"] else None,
                "ST fastest passing": best["st"][1] if best["st"] else "none",
                "ST texts/s": best["st"][0] if best["st"] else None,
                "rankkit / ST": ratio,
                "goal >= 1.3": "" if ratio is None else ("met" if ratio >= 1.3 else "not met"),
            }
        )
    for row in summary:
        print(
            f"{row['case']}: {row['rankkit fastest passing']} / {row['ST fastest passing']} = "
            + (f"{row['rankkit / ST']:.2f}x ({row['goal >= 1.3']})" if row["rankkit / ST"] else "n/a")
        )

    described = [
        {"system": SYSTEMS[k].label, "key": k, "setup": json.dumps(w.hello["describe"])} for k, w in workers.items()
    ]
    extra = dict(tables)
    extra["systems as loaded"] = described + [
        {"system": SYSTEMS[k].label, "key": k, "setup": f"not available: {e}"} for k, e in failed.items()
    ]
    extra["package versions"] = [
        {"package": name, **{env: found.get(name) for env, found in versions.items()}}
        for name in dict.fromkeys(n for found in versions.values() for n in found)
    ]
    flags = cpu_flags()
    params = {
        "n": len(documents),
        "reps": args.reps,
        "block": args.block,
        "query_calls": args.query_calls,
        "threads": args.threads,
        "model": args.model,
        "systems": ",".join(keys),
        "load_processes": args.load,
        "gap_ms": args.gap_ms,
        "calibration": f"dl19 passages {args.calibration_start}..{args.calibration_start + len(calibration)}",
        "st_batch_size": ST_BATCH_SIZE,
        "onnx_int8_config": onnx_int8_config(),
        "avx512_vnni": "avx512_vnni" in flags,
        "avx512_bf16": "avx512_bf16" in flags,
        "amx_bf16": "amx_bf16" in flags,
        "load_average_start": load_at_start,
        "load_average_timed_start": load_timed_start,
        "load_average_timed_end": load_timed_end,
    }
    overlap_note = (
        f" The timed passages overlap the calibration passages ({args.calibration_start}..{cal_end})."
        if len(documents) > args.calibration_start
        else ""
    )
    notes = [
        "Each system runs in its own long-lived process (benchmarks/encode_workers.py; rankkit under .venv, "
        "sentence-transformers under .venv-st) that loads its model once and times each encode call itself "
        "(wall: perf_counter; CPU: process_time, all of the process's threads). The driver sends one call at "
        "a time, systems in ABBA order per call (forward, reversed, ...), sums a system's calls per "
        f"repetition; texts/s is the median over repetitions; {args.gap_ms:g} ms pause between calls.",
        f"Threads: torch.set_num_threads({args.threads}) in every worker; ONNX Runtime intra_op_num_threads="
        f"{args.threads}, inter_op 1 (rankkit's OnnxForward; ST through model_kwargs session_options); OpenVINO "
        f"INFERENCE_NUM_THREADS={args.threads} with INFERENCE_PRECISION_HINT=f32 on both sides (rankkit "
        "precision='fp32'; ST ov_config), so a CPU with bf16 does not compute OpenVINO in bf16 "
        "(the table 'systems as loaded' gives what each compiled model reports). TOKENIZERS_PARALLELISM=false.",
        f"sentence-transformers: encode_document / encode_query(batch_size={ST_BATCH_SIZE}, normalize_embeddings=True) "
        f"from a copy of the model folder ({st_folder}) into which it exports: onnx by loading with backend='onnx' "
        "and save_pretrained; O3/O4 by export_optimized_onnx_model; int8 by export_dynamic_quantized_onnx_model("
        f"'{onnx_int8_config()}'); openvino by backend='openvino' and save_pretrained; openvino int8 as "
        "export_static_quantized_openvino_model does it (OVQuantizer, OVQuantizationConfig, texts padded to 384 "
        f"tokens) but calibrated on {len(calibration)} dl19 passages {args.calibration_start}..{cal_end} instead of "
        "GLUE SST-2 from the Hub (no network).",
        "ONNX O4 is optimum's GPU level (O3 + fp16 weights): optimum exports it on a CPU-only machine with a "
        "warning ('There is no gpu for onnxruntime to do optimization') and ONNX Runtime's CPU provider runs it; "
        "it is timed as exported, an fp16 graph on the CPU.",
        "rankkit: BiEncoder(precision='fp32', inference=Inference(backend, quantize), sample=the same calibration "
        f"passages), exports in a private cache ({rankkit_cache}) so that the int8 calibration and the quality "
        "gate's sample are these passages (rankkit's export cache is keyed by model, task, backend and "
        "quantisation, not by sample).",
        f"Quality: min cosine of each system's vectors to rankkit torch fp32's vectors of the same texts (the "
        "case's vectors, last repetition); top-10 overlap: each of the 43 queries (the batch call's vectors; for "
        "single queries, the single calls') ranks the passages, mean share of fp32's top 10 kept. Passes gate: "
        f"min cosine >= {GATE_MIN_COSINE} and overlap >= {GATE_MIN_OVERLAP} (rankkit.options)." + overlap_note,
        f"Competing load: {args.load} busy processes (single-threaded numpy matmul loops, default priority) "
        "during the timed part only; load averages at start, at the timed part's start and end are in the "
        "parameters, at the end in the machine line.",
        "Summary: per case, rankkit's fastest gate-passing system over sentence-transformers' fastest "
        "gate-passing system (texts/s); goal >= 1.3.",
    ]
    save_result(
        args.name,
        summary,
        title="Encoding throughput by inference backend: rankkit vs sentence-transformers"
        + (f", with {args.load} competing processes" if args.load else ""),
        params=params,
        notes=notes,
        extra_tables=extra,
        started=started,
    )


if __name__ == "__main__":
    main()
