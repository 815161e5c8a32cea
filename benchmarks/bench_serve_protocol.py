"""What the guarded h11 protocol (rankkit.serve.protocol, the server's default since issue 13)
costs per request against uvicorn's httptools parser, which has no header-size limit: the same
app with a stub engine that answers at once, one keep-alive http.client connection on loopback,
POST /search, the two arms interleaved A B A B ... so machine load hits both alike.

    .venv/bin/python benchmarks/bench_serve_protocol.py            # 3 rounds x 1500 requests per arm
Results: benchmarks/results/serve_protocol.json and .md."""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time

import uvicorn
from common import REPO_ROOT, median, percentile, save_result

sys.path.insert(0, str(REPO_ROOT / "tests"))
from serve_fakes import GatedEngine  # noqa: E402

from rankkit.serve.app import create_app  # noqa: E402
from rankkit.serve.config import ServeConfig  # noqa: E402
from rankkit.serve.server import uvicorn_config  # noqa: E402

ARMS = ("guarded h11 (rankkit)", "httptools (uvicorn default)")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def latencies(arm: str, requests: int) -> list[float]:
    engine = GatedEngine()
    engine.gate.set()
    config = ServeConfig(indexes=("stub",), port=free_port())
    app = create_app(config, engine=engine)
    settings = (
        uvicorn_config(app, config)
        if arm == ARMS[0]
        else uvicorn.Config(app, host="127.0.0.1", port=config.port, http="httptools")
    )
    settings.log_level = "warning"
    server = uvicorn.Server(settings)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    connection = http.client.HTTPConnection("127.0.0.1", config.port)
    body = json.dumps({"query": "why is the sky blue", "k": 10})
    seconds = []
    for _ in range(requests):
        started = time.perf_counter()
        connection.request("POST", "/search", body, {"Content-Type": "application/json"})
        connection.getresponse().read()
        seconds.append(time.perf_counter() - started)
    server.should_exit = True
    thread.join(10)
    return seconds[requests // 10 :]  # the first tenth warms up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=1500)
    args = parser.parse_args()
    started = time.time()
    rows = []
    for round_ in range(args.rounds):
        for arm in ARMS if round_ % 2 == 0 else ARMS[::-1]:
            seconds = latencies(arm, args.requests)
            rows.append(
                {
                    "round": round_ + 1,
                    "protocol": arm,
                    "requests": len(seconds),
                    "p50_ms": round(1000 * median(seconds), 3),
                    "p99_ms": round(1000 * percentile(seconds, 99), 3),
                }
            )
            print(rows[-1], flush=True)
    summary = [
        {
            "protocol": arm,
            "median p50_ms over rounds": round(median(r["p50_ms"] for r in rows if r["protocol"] == arm), 3),
        }
        for arm in ARMS
    ]
    save_result(
        "serve_protocol",
        rows,
        title="HTTP protocol cost per request: guarded h11 vs httptools (stub engine)",
        params=vars(args),
        extra_tables={"Summary": summary},
        started=started,
        notes=["one client, keep-alive, loopback; the engine answers at once, so this is the HTTP stack alone"],
    )


if __name__ == "__main__":
    main()
