"""Load benchmark of `rankkit serve` on dl19: throughput, latency percentiles, errors and
micro-batch sizes under 1..64 concurrent clients, against the same work done in-process.

    .venv/bin/python benchmarks/bench_serve.py                # recorded run (T=15 s per level)
    .venv/bin/python benchmarks/bench_serve.py --omp-threads 1 --name serve_load-omp1
    .venv/bin/python benchmarks/bench_serve.py --seconds 3 --wait-load 0 --name serve_load-smoke
    .venv/bin/python benchmarks/bench_serve.py --poison-every 30 --levels 64 ...   # 1 poisoned request in 30

What it does, all in one run:
  1. indexes: one per kind in --modes (BM25 always), reused from indexes/dl19-KIND (dense: Flat,
     default model; splade: splade-tiny) when their
     manifests point at dl19's collection (same sha256), else builds them into --work-dir.
  2. waits (unless --wait-load 0) until the 1-minute load average is below --wait-load, polling
     every 30 s for at most --wait-max-min minutes, then runs anyway (the notes say so).
  3. starts `python -m rankkit.cli serve -i INDEX ... --precision fp32 --host 127.0.0.1 --port P`
     (loopback only) as a subprocess and, in this process, a rankkit.serve.engine.SearchEngine
     with the same ServeConfig; waits for GET /health == ready. Queries are encoded in fp32, as in
     the recorded runs (the default, auto, is bf16 on a CPU with native bfloat16).
  4. checks that the server's top-10 docids equal the in-process engine's for all 43 queries and
     every mode.
  5. 1 client, paired: for each mode, each round runs the same query three ways, order rotated
     over all permutations: in-process (the engine's search_batch of one query; hybrid: every index at
     depth 100, then fuse), over HTTP with http.client (lean, keep-alive) and with httpx.Client,
     for --paired-seconds; p50 of each -> the HTTP overhead.
  6. load levels: for each mode and each of --levels concurrent clients, --seconds of closed-loop
     load (each client on its own keep-alive connection, written on bare asyncio streams, or one
     shared httpx.AsyncClient with --client httpx; the 43 queries round-robin, POST /search k=10;
     also BM25 with text=true at --text-levels). Every loop stops by itself: no request starts
     after the deadline and each has a --timeout. Records QPS, p50/p95/p99, non-2xx by status,
     exceptions (dropped connections, timeouts), /metrics deltas of rankkit_batches_total /
     rankkit_batched_queries_total (mean micro-batch size) and the CPU seconds used by the server
     and by this (client) process. Then the same for a server with --batch-wait-ms
     --variant-wait-ms (0) at --variant-levels (1,16).
  7. overload: a second server with --max-queue 8 hit by --overload-clients dense clients for
     --overload-seconds: 503 count and latency, any other 5xx, dropped connections; then /health
     and one normal query must still answer.
  8. pyserini's own REST server (pyserini.server.rest, pyserini 1.6.0): checks whether it starts
     as shipped; it does not here (see the notes), so it is also run through a small shim (stub
     for the missing optional module, our Lucene folder registered under a prebuilt-index name, no
     download, uvicorn on 127.0.0.1) and loaded the same way for BM25; --no-pyserini skips it.
Results: benchmarks/results/<--name>.json and .md (default serve_load).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import httpx  # noqa: E402
from common import REPO_ROOT, dl19_dir, percentile, save_result  # noqa: E402

from rankkit.data.queries import read_queries  # noqa: E402
from rankkit.errors import RankkitError  # noqa: E402
from rankkit.index.manifest import CorpusInfo, Manifest  # noqa: E402

HOST = "127.0.0.1"  # loopback only, never any other address
PRECISION = "fp32"  # the query encoder's, in the server and in-process alike (as the recorded runs)
K = 10
MODES = ("bm25", "dense", "hybrid")
READY_TIMEOUT_S = 300
PYSERINI_INDEX_NAME = "rankkit-dl19-bm25"
SERVER_ENV: dict[str, str] = {"TOKENIZERS_PARALLELISM": "false"}  # plus OMP/MKL threads with --omp-threads

# Run in a subprocess: pyserini's REST app (pyserini.server.rest.app) with the least patching that
# lets it serve a local Lucene folder here. Everything else (routes, SearchController.search,
# models, uvicorn) is pyserini's own. argv: lucene_dir port
PYSERINI_SHIM = r"""
import sys, types
lucene_dir, port = sys.argv[1], int(sys.argv[2])
from rankkit.index.java import configure_java
configure_java()  # the same JVM set-up rankkit uses
# 1. search_controller imports pyserini.encode.optional._uniir, which needs the optional package
#    uniir_for_pyserini (not installed): stub it (only the M-BEIR indexes use it)
for name in ("uniir_for_pyserini", "uniir_for_pyserini.pyserini_integration",
             "uniir_for_pyserini.pyserini_integration.uniir_corpus_encoder",
             "uniir_for_pyserini.pyserini_integration.uniir_query_encoder"):
    module = types.ModuleType(name)
    module.CorpusEncoder = module.QueryEncoder = object
    sys.modules.setdefault(name, module)
# 2. the controller only opens prebuilt indexes by name (a local path -> ValueError -> 404) and at
#    import downloads msmarco-v1-passage: register our folder under a name, download nothing
from pyserini.prebuilt_index_info import TF_INDEX_INFO
from pyserini.search.lucene import LuceneSearcher
TF_INDEX_INFO[NAME] = {"description": "rankkit dl19 BM25 index (local)", "size compressed (bytes)": 0}
def from_prebuilt_index(cls, prebuilt_index_name, verbose=False):
    return cls(lucene_dir) if prebuilt_index_name == NAME else None  # None = what a failed download gives
LuceneSearcher.from_prebuilt_index = classmethod(from_prebuilt_index)
from pyserini.server.rest.app import app
from pyserini.server.search_controller import get_controller
get_controller().search("warm up", NAME, 10)  # open the index before saying ready
import uvicorn
# 3. its main() binds 0.0.0.0; here loopback only
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
""".replace("NAME", repr(PYSERINI_INDEX_NAME))


# ----------------------------------------------------------------------------------------- setup


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds per load level (default 15)")
    parser.add_argument("--levels", default="1,4,16,64", help="concurrent clients per level (default 1,4,16,64)")
    parser.add_argument(
        "--modes",
        default="bm25,dense,hybrid",
        help="modes to load (an index of each kind named is served; hybrid fuses them all)",
    )
    parser.add_argument(
        "--paired-seconds",
        type=float,
        default=None,
        help="seconds per mode of the paired in-process/HTTP 1-client run (default: --seconds)",
    )
    parser.add_argument(
        "--text-levels",
        default="1,16",
        help="levels also run as bm25 with text=true (pyserini always returns text); '' skips",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request timeout in seconds (default 30)")
    parser.add_argument(
        "--client",
        choices=("raw", "httpx"),
        default="raw",
        help="load generator: bare asyncio streams (default) or one shared httpx.AsyncClient",
    )
    parser.add_argument(
        "--omp-threads",
        type=int,
        default=None,
        help="OMP/MKL threads of the servers and torch/faiss threads in-process (default: the libraries' defaults)",
    )
    parser.add_argument(
        "--variant-wait-ms",
        type=float,
        default=0.0,
        help="also run a server with this --batch-wait-ms (paired + --variant-levels; default 0)",
    )
    parser.add_argument(
        "--no-variant",
        dest="variant_wait_ms",
        action="store_const",
        const=None,
        help="skip the --batch-wait-ms variant",
    )
    parser.add_argument("--variant-levels", default="1,16")
    parser.add_argument("--overload-clients", type=int, default=96)
    parser.add_argument("--overload-seconds", type=float, default=5.0)
    parser.add_argument("--overload-max-queue", type=int, default=8)
    parser.add_argument("--no-pyserini", action="store_true", help="skip pyserini's REST server")
    parser.add_argument(
        "--poison-every",
        type=int,
        default=0,
        help="in the load levels, make every Nth request a lone-surrogate query (valid JSON, not "
        "UTF-8 text), and count the innocent requests that fail (default 0: none)",
    )
    parser.add_argument(
        "--index-dir",
        type=Path,
        default=REPO_ROOT / "indexes",
        help="where dl19-dense and dl19-bm25 are reused from (default indexes/)",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=Path("/tmp/rankkit-serve-bench"),
        help="where missing indexes are built and server logs go",
    )
    parser.add_argument(
        "--wait-load", type=float, default=2.5, help="wait until the 1-min load average is below this (0: don't wait)"
    )
    parser.add_argument("--wait-max-min", type=float, default=40.0)
    parser.add_argument(
        "--backend", default="torch", help="the servers' (and the in-process engine's) --backend (default torch)"
    )
    parser.add_argument("--quantize", default="none", help="their --quantize (default none)")
    parser.add_argument("--name", default="serve_load")
    return parser.parse_args()


def code_version() -> str:
    """The commit the servers run, and whether rankkit/ or cli/ differ from it."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO_ROOT, timeout=30
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "rankkit", "cli"],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return rev + (" + uncommitted changes in rankkit/ or cli/" if dirty else "")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


DEFAULT_MODELS = {"dense": "default", "splade": "splade-tiny"}  # the model each kind is built with here


def index_matches(folder: Path, kind: str, corpus: CorpusInfo) -> bool:
    from rankkit.encode.models import DEFAULT_MODEL

    try:
        manifest = Manifest.read(folder)
    except RankkitError:
        return False
    if manifest.kind != kind or manifest.corpus.sha256 != corpus.sha256:
        return False
    if kind == "dense":
        return manifest.model == DEFAULT_MODEL and manifest.index_type == "Flat"
    return kind == "bm25" or manifest.model == DEFAULT_MODELS.get(kind)


def ensure_indexes(
    args: argparse.Namespace, collection: Path, kinds: tuple[str, ...]
) -> tuple[dict[str, Path], dict[str, str]]:
    """The dl19 index of each kind, reused from --index-dir or --work-dir when it matches, else
    built into --work-dir as `rankkit index build` builds it."""
    from rankkit.index.build import build_index
    from rankkit.index.options import IndexBuild

    corpus = CorpusInfo.of(collection, "tsv")
    found: dict[str, Path] = {}
    info: dict[str, str] = {}
    for kind in kinds:
        for folder in (args.index_dir / f"dl19-{kind}", args.work_dir / f"dl19-{kind}"):
            if index_matches(folder, kind, corpus):
                found[kind], info[f"{kind}_index"] = folder, f"reused {folder}"
                break
        else:
            folder = args.work_dir / f"dl19-{kind}"
            print(f"building {folder} from {collection} ...", flush=True)
            t0 = time.perf_counter()
            model = {"model": DEFAULT_MODELS[kind]} if kind in DEFAULT_MODELS else {}
            build_index(IndexBuild(corpus=str(collection), kind=kind, output=str(folder), overwrite=True, **model))
            found[kind], info[f"{kind}_index"] = folder, f"built {folder} in {time.perf_counter() - t0:.0f} s"
    return found, info


def wait_for_quiet(threshold: float, max_minutes: float) -> dict[str, Any]:
    start, first = time.monotonic(), os.getloadavg()[0]
    if threshold <= 0:
        return {"waited_s": 0, "load_at_start": round(first, 2), "quiet": None}
    while True:
        load = os.getloadavg()[0]
        waited = time.monotonic() - start
        if load < threshold:
            return {"waited_s": round(waited), "load_at_start": round(load, 2), "quiet": True}
        if waited >= max_minutes * 60:
            return {"waited_s": round(waited), "load_at_start": round(load, 2), "quiet": False}
        print(f"load average {load:.2f} >= {threshold}: waiting ({waited / 60:.1f} of {max_minutes} min)", flush=True)
        time.sleep(30)


class Process:
    """A server subprocess (its output in a log file), stopped with SIGTERM."""

    def __init__(self, argv: list[str], log: Path, port: int, ready_path: str):
        self.port, self.log, self.ready_path = port, log, ready_path
        self.url = f"http://{HOST}:{port}"
        env = {**os.environ, **SERVER_ENV}
        env.pop("RANKKIT_API_KEY", None)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "wb") as out:
            self.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, check: Callable[[httpx.Response], bool], timeout: float = READY_TIMEOUT_S) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.output()[-3000:]}")
            try:
                if check(httpx.get(self.url + self.ready_path, timeout=5)):
                    return time.monotonic() - start
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"server not ready after {timeout} s:\n{self.output()[-3000:]}")

    def cpu_seconds(self) -> float:
        """User + system CPU of the server process (all its threads), from /proc."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return float("nan")

    def stop(self) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


BACKEND_ARGS: list[str] = []  # --backend and --quantize of every rankkit server (set by main)


def rankkit_server(folders: list[Path], log: Path, *extra: str) -> Process:
    port = free_port()
    indexes = [arg for folder in folders for arg in ("-i", str(folder))]
    argv = [
        sys.executable,
        "-m",
        "rankkit.cli",
        "serve",
        *indexes,
        "--precision",
        PRECISION,
        "--host",
        HOST,
        "--port",
        str(port),
        *BACKEND_ARGS,
        *extra,
    ]
    return Process(argv, log, port, "/health")


def rankkit_ready(response: httpx.Response) -> bool:
    if response.status_code == 200 and response.json().get("status") == "ready":
        return True
    if response.status_code == 503 and response.json().get("status") == "failed":
        raise RuntimeError(f"server failed to load: {response.json().get('error')}")
    return False


# ----------------------------------------------------------------------------------- measurement


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def scrape(url: str) -> dict[str, float]:
    text = httpx.get(url + "/metrics", timeout=30).text
    values = {}
    for name in ("rankkit_batches_total", "rankkit_batched_queries_total"):
        match = re.search(rf"^{name} (\S+)$", text, re.M)
        values[name] = float(match.group(1)) if match else float("nan")
    return values


class InProcess:
    """The server's work for one query, without HTTP: the same engine calls it makes."""

    def __init__(self, engine: Any, hybrid_depth: int):
        self.engine, self.hybrid_depth = engine, hybrid_depth

    def search(self, mode: str, query: str) -> list[Any]:
        engine = self.engine
        if mode != "hybrid":
            return engine.search_batch(mode, [(query, K)])[0]
        pool = max(K, self.hybrid_depth)
        return engine.fuse([engine.search_batch(each, [(query, pool)])[0] for each in engine.retrievers], K)


def rankkit_body(mode: str, text: bool = False) -> Callable[[str], dict]:
    return lambda query: {"query": query, "k": K, "mode": mode, "text": text}


def pyserini_body(query: str) -> dict:
    return {"query": query, "hits": K}


def check_same_hits(
    url: str,
    path: str,
    body: Callable[[str], dict],
    queries: list[str],
    expected: Callable[[str], list[str]],
    docids: Callable[[dict], list[str]],
) -> int:
    """Send every query once (also a warm-up); the number whose top-K docids differ from `expected`."""
    differ = 0
    with httpx.Client(base_url=url, timeout=60) as client:
        for query in queries:
            response = client.post(path, json=body(query))
            response.raise_for_status()
            if docids(response.json()) != expected(query):
                differ += 1
    return differ


def http_request(path: str, body: dict) -> bytes:
    """One pre-encoded HTTP/1.1 keep-alive POST of a JSON body."""
    data = json.dumps(body).encode()
    return (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    ).encode() + data


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, server closes) of one HTTP/1.1 response (Content-Length or chunked)."""
    lines = (await reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
    status = int(lines[0].split(None, 2)[1])
    length, chunked, close = 0, False, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value
        elif name == b"connection":
            close = value == b"close"
    if not chunked:
        return status, await reader.readexactly(length), close
    body = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        body += (await reader.readexactly(size + 2))[:-2]
        if size == 0:
            return status, bytes(body), close


POISON_QUERY = "stars \ud800"  # a lone surrogate: json.dumps escapes it, the server must answer 422


def poisoned(bodies: list[dict], every: int) -> list[tuple[dict, bool]]:
    """(body, is_poisoned): every `every`-th body (1-based) gets POISON_QUERY; 0 poisons none."""
    return [
        ({**body, "query": POISON_QUERY}, True) if every and (i + 1) % every == 0 else (body, False)
        for i, body in enumerate(bodies)
    ]


class Collector:
    """Answers of the innocent requests (statuses, latencies) and, apart, of the poisoned ones."""

    def __init__(self) -> None:
        self.statuses: Counter = Counter()
        self.poisoned: Counter = Counter()
        self.exceptions: Counter = Counter()
        self.ok: list[float] = []
        self.by_status: dict[int, list[float]] = {}

    def add(self, status: int, seconds: float, poison: bool = False) -> None:
        if poison:
            self.poisoned[status] += 1
            return
        self.statuses[status] += 1
        (self.ok if 200 <= status < 300 else self.by_status.setdefault(status, [])).append(seconds)


async def _load_raw(
    port: int, requests: list[tuple[bytes, bool]], clients: int, seconds: float, timeout: float, got: Collector
) -> None:
    """`clients` closed-loop clients, each on its own keep-alive connection (reopened after a failure),
    written on bare asyncio streams: ~0.05 ms of client CPU per request, so the client does not
    compete with the server for the 2 CPUs the way httpx does (1-8 ms per request; benchmarks/README.md,
    bench_serve.py)."""
    counter = itertools.count()
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        reader = writer = None
        try:
            while time.perf_counter() < deadline:  # no request starts after the deadline
                request, poison = requests[next(counter) % len(requests)]
                t0 = time.perf_counter()
                try:
                    async with asyncio.timeout(timeout):  # every request ends by itself
                        if writer is None:
                            reader, writer = await asyncio.open_connection(HOST, port)
                        writer.write(request)
                        status, _, close = await read_response(reader)
                except Exception as exc:  # dropped connection, timeout, protocol error: counted
                    got.exceptions[type(exc).__name__] += 1
                    if writer is not None:
                        writer.close()
                    reader = writer = None
                    continue
                got.add(status, time.perf_counter() - t0, poison)
                if close:
                    writer.close()
                    reader = writer = None
        finally:
            if writer is not None:
                writer.close()

    await asyncio.gather(*(worker() for _ in range(clients)))


async def _load_httpx(
    url: str, path: str, bodies: list[tuple[dict, bool]], clients: int, seconds: float, timeout: float, got: Collector
) -> None:
    """The same with one shared httpx.AsyncClient (connection limit = clients)."""
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    counter = itertools.count()
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as client:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                body, poison = bodies[next(counter) % len(bodies)]
                t0 = time.perf_counter()
                try:
                    response = await client.post(
                        path, content=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
                    )
                    await response.aread()
                except Exception as exc:
                    got.exceptions[type(exc).__name__] += 1
                    continue
                got.add(response.status_code, time.perf_counter() - t0, poison)

        await asyncio.gather(*(worker() for _ in range(clients)))


def load_level(
    server: Process,
    path: str,
    body: Callable[[str], dict],
    queries: list[str],
    clients: int,
    seconds: float,
    timeout: float,
    client: str = "raw",
    metrics: bool = True,
    poison_every: int = 0,
) -> dict[str, Any]:
    before = scrape(server.url) if metrics else {}
    cpu_server, cpu_client = server.cpu_seconds(), time.process_time()
    got = Collector()
    # the queries repeat until there are enough to poison one in `poison_every`
    repeats = max(1, -(-poison_every // len(queries))) if poison_every else 1
    bodies = poisoned([body(q) for q in queries * repeats], poison_every)
    work = (
        _load_raw(server.port, [(http_request(path, b), p) for b, p in bodies], clients, seconds, timeout, got)
        if client == "raw"
        else _load_httpx(server.url, path, bodies, clients, seconds, timeout, got)
    )
    start = time.perf_counter()
    # a second guard: each request already has `timeout`, so the level ends by itself
    asyncio.run(asyncio.wait_for(work, seconds + 2 * timeout + 10))
    wall = time.perf_counter() - start
    cpu_server, cpu_client = server.cpu_seconds() - cpu_server, time.process_time() - cpu_client
    after = scrape(server.url) if metrics else {}
    ok = got.ok
    non2xx = {code: n for code, n in sorted(got.statuses.items()) if not 200 <= code < 300}
    row: dict[str, Any] = {
        "clients": clients,
        "seconds": round(wall, 2),
        "requests": sum(got.statuses.values()) + sum(got.poisoned.values()) + sum(got.exceptions.values()),
        "ok": len(ok),
        "qps": round(len(ok) / wall, 1),
        "p50_ms": ms(percentile(ok, 50)),
        "p95_ms": ms(percentile(ok, 95)),
        "p99_ms": ms(percentile(ok, 99)),
        "non2xx": json.dumps(non2xx) if non2xx else "",
        "5xx": sum(n for code, n in non2xx.items() if code >= 500),
        "503": non2xx.get(503, 0),
        "exceptions": json.dumps(dict(got.exceptions)) if got.exceptions else "",
    }
    if poison_every:
        row.update(
            poisoned=sum(got.poisoned.values()),
            poisoned_statuses=json.dumps(dict(got.poisoned)),
            innocent_failed=sum(n for code, n in got.statuses.items() if not 200 <= code < 300),
        )
    if metrics:
        batches = after["rankkit_batches_total"] - before["rankkit_batches_total"]
        batched = after["rankkit_batched_queries_total"] - before["rankkit_batched_queries_total"]
        row.update(
            batches=int(batches),
            batched_queries=int(batched),
            mean_batch=round(batched / batches, 2) if batches else None,
        )
    row.update(server_cpu_s=round(cpu_server, 1), client_cpu_s=round(cpu_client, 1))
    row["_by_status"] = got.by_status
    return row


def paired(server: Process, mode: str, queries: list[str], local: InProcess, seconds: float) -> dict[str, Any]:
    """One client, three arms on the same query, order rotated over all 6 permutations: in-process
    engine call, HTTP with a lean client (http.client, keep-alive), HTTP with httpx.Client."""
    import http.client

    times: list[list[float]] = [[], [], []]
    failures = 0
    lean = http.client.HTTPConnection(HOST, server.port, timeout=60)
    orders = list(itertools.permutations(range(3)))
    with httpx.Client(base_url=server.url, timeout=60) as client:
        deadline = time.perf_counter() + seconds
        for i in itertools.count():
            if time.perf_counter() >= deadline:
                break
            query = queries[i % len(queries)]
            body = rankkit_body(mode)(query)
            for arm in orders[i % len(orders)]:
                t0 = time.perf_counter()
                if arm == 0:
                    local.search(mode, query)
                elif arm == 1:
                    lean.request("POST", "/search", json.dumps(body), {"Content-Type": "application/json"})
                    response = lean.getresponse()
                    response.read()
                    failures += response.status != 200
                else:
                    failures += client.post("/search", json=body).status_code != 200
                times[arm].append(time.perf_counter() - t0)
    lean.close()
    p50 = [statistics.median(t) for t in times]
    return {
        "mode": mode,
        "rounds": len(times[0]),
        "inproc_p50_ms": ms(p50[0]),
        "inproc_p95_ms": ms(percentile(times[0], 95)),
        "http_p50_ms": ms(p50[1]),
        "http_p95_ms": ms(percentile(times[1], 95)),
        "overhead_ms": ms(p50[1] - p50[0]),
        "overhead_pct": round(100 * (p50[1] / p50[0] - 1), 1),
        "httpx_p50_ms": ms(p50[2]),
        "httpx_overhead_pct": round(100 * (p50[2] / p50[0] - 1), 1),
        "http_failures": failures,
    }


# ---------------------------------------------------------------------------------------- phases


def pyserini_stock_check(work_dir: Path) -> str:
    """Try `import pyserini.server.rest.app` as `python -m pyserini.server.rest` would (no download cache)."""
    cache = work_dir / "pyserini-cache-empty"
    cache.mkdir(parents=True, exist_ok=True)
    code = (
        "from rankkit.index.java import configure_java; configure_java()\n"
        "import pyserini.server.rest.app\nprint('IMPORTED')"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "PYSERINI_CACHE": str(cache)},
            cwd=REPO_ROOT,
        )
    except subprocess.TimeoutExpired:
        return "import timed out after 300 s"
    if "IMPORTED" in done.stdout:
        return "imports"
    last = [line for line in (done.stderr or done.stdout).strip().splitlines() if line.strip()]
    return last[-1] if last else f"exit {done.returncode}"


def _stop_on_sigterm(signum: int, frame: object) -> None:
    print(f"bench_serve: got signal {signum}: stopping the servers and exiting", file=sys.stderr, flush=True)
    raise SystemExit(128 + signum)  # unwinds through the `finally` blocks that stop the servers


def main() -> None:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    args = parse_args()
    started = time.time()
    levels = [int(x) for x in args.levels.split(",") if x]
    modes = [m for m in args.modes.split(",") if m]
    text_levels = [int(x) for x in args.text_levels.split(",") if x]
    paired_seconds = args.paired_seconds if args.paired_seconds is not None else args.seconds
    args.work_dir.mkdir(parents=True, exist_ok=True)
    logs = args.work_dir / "logs"
    collection = dl19_dir() / "collection.tsv"
    queries = list(read_queries(dl19_dir() / "queries.tsv").values())
    kinds = tuple(dict.fromkeys(["bm25", *(m for m in modes if m != "hybrid")]))  # BM25 always (pyserini's row)
    if "hybrid" in modes and len(kinds) < 2:
        kinds = ("dense", "bm25")
    folders, index_info = ensure_indexes(args, collection, kinds)
    bm25_dir = folders["bm25"]
    served = list(folders.values())
    print(f"indexes {', '.join(map(str, served))}; {len(queries)} queries", flush=True)

    quiet = wait_for_quiet(args.wait_load, args.wait_max_min)
    print(f"load: {quiet}", flush=True)
    notes: list[str] = []
    if quiet["quiet"] is False:
        notes.append(
            f"the 1-min load average never fell below {args.wait_load} in {args.wait_max_min} min "
            f"(it was {quiet['load_at_start']} when the run began): other work shared the 2 CPUs"
        )

    from rankkit.serve.config import ServeConfig
    from rankkit.serve.engine import SearchEngine

    if args.omp_threads:
        import faiss
        import torch

        SERVER_ENV.update(OMP_NUM_THREADS=str(args.omp_threads), MKL_NUM_THREADS=str(args.omp_threads))
        torch.set_num_threads(args.omp_threads)
        faiss.omp_set_num_threads(args.omp_threads)

    BACKEND_ARGS.extend(["--backend", args.backend, "--quantize", args.quantize])
    config = ServeConfig(
        indexes=tuple(map(str, served)), precision=PRECISION, host=HOST, backend=args.backend, quantize=args.quantize
    )
    t0 = time.perf_counter()
    engine = SearchEngine(config)
    local = InProcess(engine, config.hybrid_depth)
    print(f"in-process engine loaded in {time.perf_counter() - t0:.1f} s", flush=True)
    rows: list[dict[str, Any]] = []
    extra: dict[str, list[dict[str, Any]]] = {}
    pairs: list[dict[str, Any]] = []
    by_level: dict[tuple[str, int], dict[str, Any]] = {}
    differ: dict[str, int] = {}
    servers_info: list[str] = []

    def rankkit_phase(label: str, extra_args: list[str], levels: list[int], text_levels: list[int]) -> None:
        """Start a server, check its answers, run the paired 1-client comparison and the load levels."""
        server = rankkit_server(served, logs / f"{re.sub(r'[^A-Za-z0-9.=-]+', '_', label)}.log", *extra_args)
        ready_s = float("nan")
        try:
            ready_s = server.wait_ready(rankkit_ready)
            print(f"{label}: ready after {ready_s:.1f} s", flush=True)
            for mode in modes:
                differ[f"{label} {mode}"] = check_same_hits(
                    server.url,
                    "/search",
                    rankkit_body(mode),
                    queries,
                    lambda q, m=mode: [h.docid for h in local.search(m, q)],
                    lambda answer: [h["docid"] for h in answer["hits"]],
                )
            mine = []
            for mode in modes:
                mine.append({"server": label, **paired(server, mode, queries, local, paired_seconds)})
                print(mine[-1], flush=True)
            for mode, text in [(m, False) for m in modes] + [("bm25", True)] * bool(text_levels):
                for clients in text_levels if text else levels:
                    row = {
                        "server": label,
                        "mode": mode + (" text=true" if text else ""),
                        **load_level(
                            server,
                            "/search",
                            rankkit_body(mode, text),
                            queries,
                            clients,
                            args.seconds,
                            args.timeout,
                            args.client,
                            poison_every=args.poison_every,
                        ),
                    }
                    row.pop("_by_status")
                    by_level[label, row["mode"], clients] = row
                    rows.append(row)
                    print(row, flush=True)
            for pair in mine:
                one = by_level.get((label, pair["mode"], 1))
                if one:
                    pair["load_1client_p50_ms"] = one["p50_ms"]
                    pair["load_1client_overhead_pct"] = round(100 * (one["p50_ms"] / pair["inproc_p50_ms"] - 1), 1)
            pairs.extend(mine)
        finally:
            code = server.stop()
            servers_info.append(
                f"{label}: ready after {ready_s:.1f} s, exit status after SIGTERM {code}, "
                f"'Traceback' in its log {server.output().count('Traceback')}"
            )

    rankkit_phase("rankkit", [], levels, text_levels)
    variant = None
    if args.variant_wait_ms is not None:
        variant = f"rankkit wait={args.variant_wait_ms:g}ms"
        rankkit_phase(
            variant,
            ["--batch-wait-ms", str(args.variant_wait_ms)],
            [int(x) for x in args.variant_levels.split(",") if x],
            [],
        )
    extra["In-process vs HTTP, 1 client (paired, order rotated)"] = pairs

    # ---- overload
    over_mode = "dense" if "dense" in folders else "bm25"
    overload_rows = []
    over = rankkit_server(served, logs / "overload.log", "--max-queue", str(args.overload_max_queue))
    try:
        over.wait_ready(rankkit_ready)
        check_same_hits(
            over.url, "/search", rankkit_body(over_mode), queries[:8], lambda q: [], lambda a: []
        )  # warm up
        row = load_level(
            over,
            "/search",
            rankkit_body(over_mode),
            queries,
            args.overload_clients,
            args.overload_seconds,
            args.timeout,
            args.client,
        )
        refused = row.pop("_by_status").get(503, [])
        health = httpx.get(over.url + "/health", timeout=30).status_code
        after = httpx.post(over.url + "/search", json=rankkit_body(over_mode)(queries[0]), timeout=30).status_code
        overload_rows.append(
            {
                "max_queue": args.overload_max_queue,
                "clients": args.overload_clients,
                "mode": over_mode,
                "seconds": row["seconds"],
                "requests": row["requests"],
                "ok": row["ok"],
                "ok_qps": row["qps"],
                "ok_p50_ms": row["p50_ms"],
                "ok_p99_ms": row["p99_ms"],
                "503": len(refused),
                "503_p50_ms": ms(percentile(refused, 50)),
                "503_p95_ms": ms(percentile(refused, 95)),
                "503_p99_ms": ms(percentile(refused, 99)),
                "503_max_ms": ms(max(refused)) if refused else None,
                "other_non2xx": json.dumps({c: n for c, n in json.loads(row["non2xx"] or "{}").items() if c != "503"}),
                "exceptions": row["exceptions"],
                "mean_batch": row["mean_batch"],
                "server_cpu_s": row["server_cpu_s"],
                "client_cpu_s": row["client_cpu_s"],
                "health_after": health,
                "search_after": after,
            }
        )
        print(overload_rows[-1], flush=True)
    finally:
        over_exit = over.stop()
    over_tracebacks = over.output().count("Traceback")
    servers_info.append(f"overload: exit status after SIGTERM {over_exit}, 'Traceback' in its log {over_tracebacks}")
    extra[f"Overload: --max-queue {args.overload_max_queue}, {args.overload_clients} {over_mode} clients"] = (
        overload_rows
    )

    # ---- pyserini's REST server
    pyserini_status = "skipped (--no-pyserini)"
    if not args.no_pyserini:
        stock = pyserini_stock_check(args.work_dir)
        pyserini_status = f"stock `python -m pyserini.server.rest`: {stock}"
        print(pyserini_status, flush=True)
        port = free_port()
        shim = Process(
            [sys.executable, "-c", PYSERINI_SHIM, str(bm25_dir / "lucene"), str(port)], logs / "pyserini.log", port, "/"
        )
        try:
            shim.wait_ready(lambda r: r.status_code == 200)
            # as shipped, an index that is not a prebuilt name (here the name of our folder) cannot be opened
            probe = httpx.post(f"{shim.url}/v1/indexes/{bm25_dir.name}/search", json=pyserini_body("test"), timeout=60)
            pyserini_status += (
                f"; POST /v1/indexes/{bm25_dir.name}/search (a non-prebuilt name) -> "
                f"{probe.status_code} {probe.text[:160]}"
            )
            path = f"/v1/indexes/{PYSERINI_INDEX_NAME}/search"
            differ["pyserini-rest vs rankkit bm25"] = check_same_hits(
                shim.url,
                path,
                pyserini_body,
                queries,
                lambda q: [h.docid for h in local.search("bm25", q)],
                lambda answer: [c["docid"] for c in answer["candidates"]],
            )
            for clients in levels:
                row = {
                    "server": "pyserini-rest (shim)",
                    "mode": "bm25",
                    **load_level(
                        shim,
                        path,
                        pyserini_body,
                        queries,
                        clients,
                        args.seconds,
                        args.timeout,
                        args.client,
                        metrics=False,
                    ),
                }
                row.pop("_by_status")
                ours = by_level.get(("rankkit", "bm25", clients))
                if ours and row["qps"]:
                    row["rankkit_qps_ratio"] = round(ours["qps"] / row["qps"], 2)
                    row["rankkit_p50_ratio"] = round(ours["p50_ms"] / row["p50_ms"], 3)
                rows.append(row)
                print(row, flush=True)
        except RuntimeError as exc:
            pyserini_status += f"; shim failed: {str(exc)[:500]}"
            print(pyserini_status, flush=True)
        finally:
            shim.stop()
    engine.close()

    # ---- goals and notes
    goals = []
    for pair in pairs:
        goals.append(
            {
                "goal": f"{pair['server']} {pair['mode']}: HTTP p50 overhead at 1 client < 20% (paired)",
                "value": f"{pair['overhead_pct']}% ({pair['inproc_p50_ms']:.2f} -> {pair['http_p50_ms']:.2f} ms)",
                "met": pair["overhead_pct"] < 20,
            }
        )
        if "load_1client_overhead_pct" in pair:
            goals.append(
                {
                    "goal": f"{pair['server']} {pair['mode']}: same, from the 1-client load level",
                    "value": f"{pair['load_1client_overhead_pct']}%",
                    "met": pair["load_1client_overhead_pct"] < 20,
                }
            )
    for label, mode in itertools.product(("rankkit", variant), modes):
        one, sixteen = by_level.get((label, mode, 1)), by_level.get((label, mode, 16))
        if one and sixteen and one["qps"]:
            ratio = sixteen["qps"] / one["qps"]
            goals.append(
                {
                    "goal": f"{label} {mode}: QPS at 16 clients / 1 client" + (" >= 2" if mode == "dense" else ""),
                    "value": f"{ratio:.2f} ({one['qps']} -> {sixteen['qps']} QPS, mean batch "
                    f"{one['mean_batch']} -> {sixteen['mean_batch']})",
                    "met": ratio >= 2 if mode == "dense" else None,
                }
            )
    for o in overload_rows:
        clean = o["other_non2xx"] in ("", "{}") and not o["exceptions"]
        goals.append(
            {
                "goal": "overload: 503s fast (p99 < 100 ms), no other 5xx, no dropped connections",
                "value": f"{o['503']} x 503, p99 {o['503_p99_ms']} ms; other {o['other_non2xx'] or '{}'}; "
                f"exceptions {o['exceptions'] or 'none'}",
                "met": bool(o["503"]) and o["503_p99_ms"] < 100 and clean,
            }
        )
    extra = {"Goals": goals, **extra}
    notes += [
        f"server: `python -m rankkit.cli serve {' '.join('-i ' + str(folder) for folder in served)} "
        f"--precision {PRECISION} --host {HOST} --port P` "
        "(defaults: --batch-wait-ms 3, --batch-max 32, --max-queue 256), "
        + (
            f"OMP_NUM_THREADS={args.omp_threads} (and torch/faiss threads in-process); "
            if args.omp_threads
            else "default torch/OpenMP threads (2 here, in the server and in-process); "
        )
        + "; ".join(servers_info)
        + f". Logs: {logs}",
        f"correctness: queries (of {len(queries)}) whose top-{K} docids over HTTP differ from the in-process "
        f"engine's: {differ}",
        (
            "load generator: this process, asyncio, one keep-alive connection per client on bare asyncio streams "
            "(pre-encoded requests, ~0.05 ms of CPU per request)"
            if args.client == "raw"
            else "load generator: this process, one shared httpx.AsyncClient (connection limit = clients)"
        )
        + ", on the same 2 CPUs as the server; client_cpu_s is its CPU use, server_cpu_s the server's (from "
        "/proc). Latency is client-side. QPS counts 2xx answers over the level's wall time (deadline + the "
        "in-flight requests draining).",
        "paired 1-client table: each round runs the same query three ways in a rotated order: in-process, over "
        "HTTP with http.client (lean, keep-alive) -> http_p50_ms / overhead_pct, and with httpx.Client -> "
        "httpx_p50_ms (what a Python httpx user sees; the difference is client-side cost).",
        "in-process: rankkit.serve.engine.SearchEngine with the same ServeConfig in the benchmark process; one "
        "call = the engine's search_batch of one (query, 10) (hybrid: every index with depth 100, then fuse, one after "
        "the other; the server runs the two at once on two worker threads).",
        (
            f"'{variant}': the same server with --batch-wait-ms {args.variant_wait_ms:g} instead of 3, to see how "
            "much of the 1-client overhead is the micro-batch wait (see `rankkit serve --help` for which workers "
            "the flag applies to in the code measured); with no wait, batches still form from the queries that "
            "queue while the worker is busy."
            if variant
            else "no --batch-wait-ms variant (--no-variant)."
        ),
        "overload clients resend at once after a 503 (they ignore Retry-After): a worst case for the event "
        "loop, which answers every refused request.",
        "mean_batch = delta rankkit_batched_queries_total / delta rankkit_batches_total over the level; both "
        "counters add up the dense and the bm25 worker, so in hybrid every query is counted twice.",
        f"pyserini REST: {pyserini_status}. As shipped in pyserini 1.6.0 it cannot serve this index: (1) "
        "pyserini/server/search_controller.py imports pyserini.encode.optional._uniir, which needs the optional "
        "package uniir_for_pyserini (not installed), so `python -m pyserini.server.rest` dies at import; (2) "
        "past that, the module creates its controller at import and opens the prebuilt index msmarco-v1-passage, "
        "i.e. downloads it (no internet here: the download fails and that index stays unusable); (3) "
        "SearchController._add_index only knows prebuilt index names, so a local Lucene folder cannot be named "
        "(ValueError -> 404, probed above); (4) its main() binds 0.0.0.0 with no host option. The rows "
        "'pyserini-rest (shim)' run pyserini's own app, routes and SearchController.search unchanged, with a "
        "shim (this script's PYSERINI_SHIM) that stubs uniir_for_pyserini, maps one registered prebuilt name to "
        "<bm25 index>/lucene (LuceneSearcher, BM25 k1=0.9 b=0.4 like rankkit), downloads nothing, and runs "
        "uvicorn on 127.0.0.1. Its handler is `async def` and calls Lucene synchronously on the event loop (one "
        "query at a time), uses LuceneSearcher.search (not batch_search) and always returns the document text "
        "(parsed from the stored raw JSON): compare with the 'bm25 text=true' rows too.",
    ]
    params = {
        "seconds": args.seconds,
        "levels": args.levels,
        "modes": args.modes,
        "k": K,
        "paired_seconds": paired_seconds,
        "timeout_s": args.timeout,
        "queries": len(queries),
        "overload": f"{args.overload_clients} clients, --max-queue {args.overload_max_queue}, "
        f"{args.overload_seconds} s",
        "code": code_version(),
        "client": args.client,
        "variant_wait_ms": args.variant_wait_ms,
        "variant_levels": args.variant_levels,
        "omp_threads": args.omp_threads,
        "wait_load": args.wait_load,
        "load_wait": quiet,
        **index_info,
    }
    columns = [
        "server",
        "mode",
        "clients",
        "seconds",
        "requests",
        "ok",
        "qps",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "non2xx",
        "5xx",
        "503",
        "exceptions",
        "batches",
        "batched_queries",
        "mean_batch",
        "server_cpu_s",
        "client_cpu_s",
        "rankkit_qps_ratio",
        "rankkit_p50_ratio",
    ]
    if args.poison_every:
        columns[columns.index("exceptions") + 1 : columns.index("exceptions") + 1] = [
            "poisoned",
            "poisoned_statuses",
            "innocent_failed",
        ]
        notes.append(
            f"--poison-every {args.poison_every}: every {args.poison_every}th request of the load levels "
            f"searches {POISON_QUERY!r} (a lone surrogate, sent as the JSON escape); those are counted "
            "apart (poisoned, poisoned_statuses); ok/qps/latency/non2xx/5xx are of the innocent requests "
            "only, innocent_failed counts their non-2xx answers, exceptions all dropped connections "
            "and timeouts"
        )
    save_result(
        args.name,
        rows,
        title="rankkit serve under load (dl19, 43 queries, k=10)",
        columns=columns,
        params=params,
        notes=notes,
        extra_tables=extra,
        started=started,
    )


if __name__ == "__main__":
    main()
