"""Every server row of issue 13's table, sent to a real `rankkit serve` on loopback, with the
status or message each now gives; plus a schemathesis run against the server's own schema.

    flock /tmp/rankkit-cpu.lock .venv/bin/python benchmarks/reliability_serve.py
    .venv/bin/python benchmarks/reliability_serve.py --fuzz-examples 5 --fuzz-seconds 30 --name reliability-serve-smoke

Indexes of the bundled sample (80 passages) are built in --work-dir with the packaged
all-MiniLM-L6-v2 (dense); the reranker is that model loaded as a cross-encoder (its scoring head
is new and random: right for timing and failure behaviour, meaningless for ranking). The
"reported" column quotes issue 13; every "now" cell is measured by this run.
Results: benchmarks/results/<--name>.json and .md (default reliability-serve)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import httpx  # noqa: E402
from common import REPO_ROOT, save_result  # noqa: E402

from rankkit.data.collection import SAMPLE_DIR  # noqa: E402

HOST = "127.0.0.1"  # loopback only
KEY = "reliability-key"
READY_TIMEOUT_S = 300
SKY = "why is the sky blue"
SURROGATE_SEARCH = b'{"query": "stars \\ud800", "mode": "%s"}'


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/rankkit-reliability-serve"))
    parser.add_argument("--fuzz-examples", type=int, default=50, help="schemathesis --max-examples (default 50)")
    parser.add_argument("--fuzz-seconds", type=int, default=300, help="schemathesis --max-time (default 300)")
    parser.add_argument("--grace", type=float, default=3.0, help="--graceful-timeout of the shutdown row (default 3)")
    parser.add_argument("--name", default="reliability-serve")
    return parser.parse_args()


# ------------------------------------------------------------------------------------ servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    environment = {**os.environ, "COLUMNS": "200", **(env or {})}
    if not env or "RANKKIT_API_KEY" not in env:
        environment.pop("RANKKIT_API_KEY", None)
    return subprocess.run(
        [sys.executable, "-m", "rankkit.cli", *args], capture_output=True, text=True, timeout=timeout, env=environment
    )


class Server:
    def __init__(self, args: list[str], log: Path):
        self.port, self.log = free_port(), log
        self.url = f"http://{HOST}:{self.port}"
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        env.pop("RANKKIT_API_KEY", None)
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "rankkit.cli", "serve", *args, "--host", HOST, "--port", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server did not start:\n{log.read_text()}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def build_sample_indexes(work: Path) -> dict[str, Path]:
    from rankkit.encode import BiEncoder
    from rankkit.encode.crossencoder import CrossEncoder
    from rankkit.index.bm25 import build_bm25_index
    from rankkit.index.dense import build_dense_index

    paths = {name: work / name for name in ("dense", "bm25", "reranker", "sentiment")}
    corpus = SAMPLE_DIR / "collection.tsv"
    if not (paths["dense"] / "manifest.json").is_file():
        build_dense_index(corpus, paths["dense"], BiEncoder("default", device="cpu"))
    if not (paths["bm25"] / "manifest.json").is_file():
        build_bm25_index(corpus, paths["bm25"])
    if not (paths["reranker"] / "config.json").is_file():
        CrossEncoder("default", device="cpu").save(paths["reranker"])
    if not (paths["sentiment"] / "model").is_dir():
        from rankkit.sentiment import SentimentConfig, read_reviews, train_sentiment
        from rankkit.sentiment.data import LabelSpec

        reviews = read_reviews(REPO_ROOT / "rankkit/sentiment/sample/reviews.csv", LabelSpec(rating_column="rating"))
        config = SentimentConfig(output=str(paths["sentiment"]), method="tfidf", overwrite=True)
        train_sentiment(reviews.texts, reviews.labels, config)
    return paths


# ------------------------------------------------------------------------------------ probes


def describe(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
    except ValueError:
        return f"{response.status_code} {response.text[:60]!r}"
    if isinstance(error, dict):
        return f"{response.status_code} {error['code']}: {error['message']}"
    return f"{response.status_code}"


def raw(port: int, data: bytes, half_close: bool = False, timeout: float = 30) -> bytes:
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
            return answer
        except (ConnectionResetError, BrokenPipeError):
            return b"(connection reset by the server)"


def status_line(answer: bytes) -> str:
    head = answer.split(b"\r\n", 1)[0].decode("latin-1")
    code = re.search(rb'"code":\s*"([^"]+)"', answer)
    return head + (f" {code.group(1).decode()}" if code else "") if head else "(no response)"


def post_request(port: int, body: bytes, extra: bytes = b"", path: bytes = b"/search") -> bytes:
    return (
        b"POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\nX-API-Key: %s\r\n"
        b"Content-Length: %d\r\n%s\r\n%s" % (path, HOST.encode(), port, KEY.encode(), len(body), extra, body)
    )


def seconds_until_closed(port: int, trickle: bytes | None, limit_s: float = 120) -> str:
    """Open a connection, send nothing (or one header line every 0.5 s), time until the server closes it."""
    started = time.monotonic()
    with socket.create_connection((HOST, port), timeout=limit_s) as sock:
        try:
            if trickle is None:
                sock.recv(1)
            else:
                sock.sendall(trickle)
                for i in range(int(limit_s / 0.5)):
                    sock.sendall(b"X-Slow-%d: v\r\n" % i)
                    time.sleep(0.5)
                    sock.settimeout(0.001)
                    try:
                        if sock.recv(1) == b"":
                            break
                    except (socket.timeout, BlockingIOError):
                        pass
                    sock.settimeout(limit_s)
        except (ConnectionResetError, BrokenPipeError):
            pass
        except socket.timeout:
            return f"still open after {limit_s:.0f} s"
    return f"closed by the server after {time.monotonic() - started:.1f} s"


def framed_twice(port: int, wait_s: float = 5.0) -> str:
    """A request framed by both Content-Length and Transfer-Encoding, a second request after its
    chunked body in the same packet: which responses come back, and whether the server closes."""
    body = b"0\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    request = post_request(port, body, b"Transfer-Encoding: chunked\r\n")
    answer, closed = b"", False
    with socket.create_connection((HOST, port), timeout=wait_s) as sock:
        sock.sendall(request)
        try:
            while chunk := sock.recv(65536):
                answer += chunk
            closed = True
        except socket.timeout:
            pass
        except ConnectionResetError:
            closed = True
    statuses = re.findall(rb"(?:^|\r\n)HTTP/1\.1 (\d{3})", answer)
    return (
        f"{len(statuses)} response(s) ({', '.join(s.decode() for s in statuses) or 'none'}): {status_line(answer)}; "
        f"{'connection closed' if closed else f'connection still open after {wait_s:.0f} s'}"
    )


def metric(url: str, endpoint: str, status: int) -> int:
    text = httpx.get(url + "/metrics", headers={"X-API-Key": KEY}).text
    found = re.search(
        rf'^rankkit_requests_total{{endpoint="{re.escape(endpoint)}",status="{status}"}} (\d+)$', text, re.M
    )
    return int(found.group(1)) if found else 0


async def concurrent_with_one_poisoned(url: str, port: int, normal: int) -> str:
    """`normal` searches and one lone-surrogate search at the same moment, each on its own connection."""

    async def one(body: bytes) -> tuple[int, str]:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            writer.write(post_request(port, body))
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            return int(head.split(b" ", 2)[1]), ""
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            return 0, type(exc).__name__
        finally:
            writer.close()

    bodies = [b'{"query": "%s %d", "mode": "dense"}' % (SKY.encode(), i) for i in range(normal)]
    bodies.insert(normal // 2, SURROGATE_SEARCH % b"dense")
    results = await asyncio.gather(*(one(b) for b in bodies))
    poisoned = results.pop(normal // 2)
    innocent_failed = sum(1 for status, _ in results if status != 200)
    dropped = sum(1 for _, error in results if error)
    return (
        f"poisoned: {poisoned[0]}; innocent: {normal - innocent_failed} of {normal} answered 200, "
        f"{innocent_failed} failed, {dropped} dropped connections"
    )


def shutdown_row(paths: dict[str, Path], work: Path, grace: float) -> str:
    """8 concurrent /rerank of 256 passages, SIGTERM while they run, --graceful-timeout `grace`."""
    server = Server(
        [
            "--index",
            str(paths["dense"]),
            "--reranker",
            str(paths["reranker"]),
            "--sentiment-model",
            str(paths["sentiment"]),
            "--api-key",
            KEY,
            "--graceful-timeout",
            str(grace),
        ],
        work / "shutdown.log",
    )
    passages = [
        {"text": f"passage {i} about the colour of the sky at dusk and the scattering of light " * 3}
        for i in range(256)
    ]

    async def run() -> tuple[list[str], float, float]:
        async with httpx.AsyncClient(base_url=server.url, headers={"X-API-Key": KEY}, timeout=600) as client:
            tasks = [
                asyncio.ensure_future(client.post("/rerank", json={"query": SKY, "passages": passages}))
                for _ in range(8)
            ]
            await asyncio.sleep(1.0)
            server.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            outcomes = []
            for task in tasks:
                try:
                    response = await task
                    outcomes.append(describe(response).split(":")[0])
                except httpx.HTTPError as exc:
                    outcomes.append(type(exc).__name__)
            answered = time.monotonic() - signalled
        exited = await asyncio.to_thread(server.process.wait, 600)
        return outcomes, answered, time.monotonic() - signalled if exited is not None else float("nan")

    outcomes, answered, exited = asyncio.run(run())
    counts = {o: outcomes.count(o) for o in sorted(set(outcomes))}
    return (
        f"grace {grace:g} s: {', '.join(f'{n} x {o}' for o, n in counts.items())}; all answered "
        f"{answered:.1f} s after SIGTERM; process exited after {exited:.1f} s with {server.process.returncode}"
    )


def schemathesis_row(url: str, work: Path, examples: int, seconds: int) -> tuple[str, dict[str, Any]]:
    work.mkdir(parents=True, exist_ok=True)
    args = [
        sys.executable,
        "-c",
        "from schemathesis.cli import schemathesis; schemathesis()",
        "run",
        f"{url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(examples),
        "--max-time",
        str(seconds),
        "--workers",
        "1",
        "--seed",
        "13",
        "--generation-database",
        "none",
        "-H",
        f"X-API-Key: {KEY}",
    ]
    done = subprocess.run(args, cwd=work, capture_output=True, text=True, timeout=seconds + 600)
    (work / "schemathesis.out").write_text(done.stdout + done.stderr)
    generated = re.search(r"(\d+) generated", done.stdout)
    failures = re.findall(r"^\s*❌ (.+?): (\d+)$", done.stdout, re.M)
    facts = {
        "cases": int(generated.group(1)) if generated else None,
        "exit": done.returncode,
        "failures": {name: int(n) for name, n in failures},
        "server_errors_5xx": done.stdout.count("Server error"),
    }
    summary = f"{facts['cases']} cases (every check, seed 13), exit {done.returncode}, " + (
        ", ".join(f"{n} x {name}" for name, n in failures) or "0 failures"
    )
    return summary, facts


# ------------------------------------------------------------------------------------ main


def main() -> None:
    args = parse_args()
    started = time.time()
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    paths = build_sample_indexes(work)
    server = Server(
        [
            "--index",
            str(paths["dense"]),
            "--index",
            str(paths["bm25"]),
            "--reranker",
            str(paths["reranker"]),
            "--api-key",
            KEY,
        ],
        work / "main.log",
    )
    url, port = server.url, server.port
    http = httpx.Client(base_url=url, headers={"X-API-Key": KEY}, timeout=120)
    rows: list[dict[str, str]] = []

    def row(what: str, reported: str, measure: Callable[[], str]) -> None:
        now = measure()
        rows.append({"input": what, "reported (issue 13)": reported, "now (measured)": now})
        print(f"{what}\n    {now}", flush=True)

    json_headers = {"Content-Type": "application/json"}
    try:
        for mode in ("dense", "bm25"):
            row(
                f'POST /search {{"query": "stars \\ud800"}} ({mode})',
                "500 unexpected TypeError / UnicodeEncodeError",
                lambda mode=mode: describe(
                    http.post("/search", content=SURROGATE_SEARCH % mode.encode(), headers=json_headers)
                ),
            )
        row(
            "30 normal dense queries and that one at the same moment",
            "up to 102 of 150 innocent queries 500, 12 keep-alive connections dropped",
            lambda: asyncio.run(concurrent_with_one_poisoned(url, port, 30)),
        )

        def deep_rerank() -> str:
            tic = time.perf_counter()
            answer = describe(http.post("/search", json={"query": SKY, "rerank": True, "rerank_depth": 1000}))
            return f"{answer} ({time.perf_counter() - tic:.2f} s)"

        row("rerank: true, rerank_depth: 1000", "61.7 s of CPU for one request", deep_rerank)

        def huge_header(extra: bytes) -> Callable[[], str]:
            def probe() -> str:
                before = server.rss_mb()
                answer = status_line(raw(port, post_request(port, b'{"query": "sky"}', extra)))
                return f"{answer}; server RSS {before:.0f} -> {server.rss_mb():.0f} MB"

            return probe

        row(
            "one 64 MB request header",
            "200, +130 MB server memory",
            huge_header(b"X-Big: " + b"a" * 64_000_000 + b"\r\n"),
        )
        row("10,000 request headers", "200", huge_header(b"".join(b"X-H%d: v\r\n" % i for i in range(10_000))))
        row(
            "a 20 kB header (arrives in one read)",
            "(not in the issue)",
            huge_header(b"X-Big: " + b"a" * 20_000 + b"\r\n"),
        )
        row("a socket that never sends", "held open indefinitely", lambda: seconds_until_closed(port, None))
        row(
            "headers trickled one line every 0.5 s",
            "held open indefinitely",
            lambda: seconds_until_closed(port, b"POST /search HTTP/1.1\r\n"),
        )

        def serve_refused(*flags: str, env: dict[str, str] | None = None) -> Callable[[], str]:
            def probe() -> str:
                port_flag = [] if "--port" in flags else ["--port", str(free_port())]
                try:
                    done = cli("serve", *flags, *port_flag, env=env)
                except subprocess.TimeoutExpired:
                    return "still running after 120 s"
                usage = re.search(r"Invalid value for [^│\n]*", done.stderr)  # Typer's boxed usage error
                lines = [usage.group(0).strip()] if usage else done.stderr.strip().splitlines()
                error = next((line for line in lines if line.startswith("error:")), None)  # after uvicorn's log
                bound = "Uvicorn running" in done.stdout + done.stderr
                return (
                    f"exit {done.returncode}, {'bound the port' if bound else 'before binding'}, "
                    f"{'traceback' if 'Traceback' in done.stderr else 'no traceback'}: "
                    f"{error or (lines[-1] if len(lines) == 1 else ' '.join(lines)[:300])}"
                )

            return probe

        row(
            '--api-key ""',
            "authentication silently off",
            serve_refused("--index", str(paths["dense"]), "--api-key", ""),
        )
        row(
            "empty RANKKIT_API_KEY",
            "authentication silently off",
            serve_refused("--index", str(paths["dense"]), env={"RANKKIT_API_KEY": ""}),
        )
        row(
            "a non-ASCII --api-key",
            "can never match (always 401)",
            serve_refused("--index", str(paths["dense"]), "--api-key", "clé"),
        )
        row(
            "serve --index DENSE_INDEX --index DENSE_INDEX (issue 13: --bm25-index DENSE_INDEX; the kind is now "
            "read from each manifest)",
            "binds, prints a traceback, stays up half-broken",
            serve_refused("--index", str(paths["dense"]), "--index", str(paths["dense"])),
        )
        row(
            "/health (unauthenticated)",
            "shows absolute server paths",
            lambda: (
                f"{httpx.get(url + '/health').text} (contains a path: "
                f"{'yes' if str(work) in httpx.get(url + '/health').text else 'no'})"
            ),
        )
        row(
            "serve --port 70000",
            "says :70000, listens on 4464",
            serve_refused("--index", str(paths["dense"]), "--port", "70000"),
        )
        damaged = work / "damaged"
        shutil.rmtree(damaged, ignore_errors=True)
        truncated = Path(shutil.copytree(paths["dense"], damaged / "dense"))
        (truncated / "index.faiss").write_bytes((truncated / "index.faiss").read_bytes()[:99])
        garbage = Path(shutil.copytree(paths["reranker"], damaged / "reranker"))
        (garbage / "model.safetensors").write_bytes(b"garbage" * 100)
        same_size = Path(shutil.copytree(paths["dense"], damaged / "dense-zeroed"))
        (same_size / "index.faiss").write_bytes(bytes((same_size / "index.faiss").stat().st_size))
        row(
            "serve -i DENSE, its index.faiss zeroed within its recorded size (found only by the full load)",
            "(second pass) binds, then 503 'failed' to everything, stays up",
            serve_refused("--index", str(same_size)),
        )
        for label, flags in (
            ("serve -i DENSE, its index.faiss truncated", ("--index", str(truncated))),
            ("serve --reranker MISSING_FOLDER", ("--index", str(paths["bm25"]), "--reranker", str(damaged / "none"))),
            (
                "serve --reranker DIR, its model.safetensors garbage",
                ("--index", str(paths["bm25"]), "--reranker", str(garbage)),
            ),
            ("serve --port P, P in use by the running server", ("--index", str(paths["bm25"]), "--port", str(port))),
        ):
            row(
                label,
                "(second pass) binds, then 503 'retry once ready' to everything / exit 0 after logging",
                serve_refused(*flags),
            )
        for body, label in (
            ({"query": SKY, "k": "10"}, 'k: "10"'),
            ({"query": SKY, "k": True}, "k: true"),
            ({"query": SKY, "rerank": "yes"}, 'rerank: "yes"'),
        ):
            row(label, "200 (lenient coercion)", lambda body=body: describe(http.post("/search", json=body)))
        row(
            "POST /health",
            "415",
            lambda: (
                f"{describe(httpx.post(url + '/health'))}, Allow: {httpx.post(url + '/health').headers.get('allow')}"
            ),
        )
        row(
            "GET /search",
            "405 without Allow",
            lambda: f"{describe(http.get('/search'))}, Allow: {http.get('/search').headers.get('allow')}",
        )

        def half_close() -> str:
            before = metric(url, "/search", 200)
            answer = raw(port, post_request(port, b'{"query": "why is the sky blue", "k": 2}'), half_close=True)
            delivered = answer.startswith(b"HTTP/1.1 200") and b'"hits"' in answer
            return (
                f"{status_line(answer)} {'delivered' if delivered else 'NOT delivered'}; /metrics 200 count "
                f"+{metric(url, '/search', 200) - before - 0}"
            )

        row(
            "a client that half-closes (SHUT_WR) after a complete POST /search",
            "no response reaches it, yet /metrics counts a 200",
            half_close,
        )
        row(
            "POST with Content-Length and Transfer-Encoding: chunked, a GET /health smuggled after the "
            "chunked body (one packet)",
            "(second pass) both answered, the connection kept open",
            lambda: framed_twice(port),
        )
        row(
            "a zero-width-only query",
            "200 with hits",
            lambda: describe(http.post("/search", json={"query": "\u200b\u200b"})),
        )
        row(
            'POST /rerank, a passage id "\\ud800" (lone surrogate)',
            "(second pass) 500 PydanticSerializationError, a traceback in the log",
            lambda: describe(
                http.post(
                    "/rerank",
                    content=rb'{"query": "sky", "passages": [{"id": "p\ud800", "text": "blue"}]}',
                    headers=json_headers,
                )
            ),
        )
        row(
            "POST /sentiment, a review of zero-width characters only",
            "(second pass) 200, classified",
            lambda: describe(http.post("/sentiment", json={"texts": ["valo", "\u200b\u200b"]})),
        )
        row(
            "Content-Type: text/plain; x=json",
            "422 (substring check)",
            lambda: describe(
                http.post("/search", content=b'{"query": "sky"}', headers={"Content-Type": "text/plain; x=json"})
            ),
        )
        row(
            "page and /docs headers",
            "(issue 13, Deliver 1) no CSP, no nosniff, Swagger UI from a CDN",
            lambda: (
                f"/: {httpx.get(url + '/').headers.get('content-security-policy', 'NO CSP')[:60]}...; nosniff "
                f"{httpx.get(url + '/').headers.get('x-content-type-options')}; /docs loads from a CDN: "
                f"{'yes' if 'https://' in httpx.get(url + '/docs').text else 'no'}"
            ),
        )
        fuzz_summary, fuzz = schemathesis_row(url, work / "schemathesis", args.fuzz_examples, args.fuzz_seconds)
        rows.append(
            {
                "input": "schemathesis against /openapi.json",
                "reported (issue 13)": "336 cases, 0 5xx, 13 findings",
                "now (measured)": fuzz_summary,
            }
        )
        print(fuzz_summary, flush=True)
    finally:
        http.close()
        server.stop()
    rows.append(
        {
            "input": "SIGTERM while 8 x /rerank of 256 passages run past the grace",
            "reported (issue 13)": "2 answered; 6 plain-text 500 at +30 s; process lingered ~159 s",
            "now (measured)": shutdown_row(paths, work, args.grace),
        }
    )
    print(rows[-1]["now (measured)"], flush=True)
    save_result(
        args.name,
        rows,
        title="Server reliability: issue 13's server rows, measured",
        params={
            "fuzz_examples": args.fuzz_examples,
            "fuzz_seconds": args.fuzz_seconds,
            "grace_s": args.grace,
            "model": "all-MiniLM-L6-v2 (dense); same model as a cross-encoder with a random head (reranker)",
            "corpus": "bundled sample (80 passages)",
        },
        notes=[
            f"schemathesis: {json.dumps(fuzz)}",
            "every 'now' cell was measured against a real `rankkit serve` on 127.0.0.1 by this script",
        ],
        started=started,
    )


if __name__ == "__main__":
    main()
