"""A stand-in search engine for server tests (imported by test_serve.py, and run by its shutdown
test in a subprocess: `python tests/serve_fakes.py PORT GRACE_S`)."""

from __future__ import annotations

import concurrent.futures
import sys
import threading

from rankkit.data.runs import Hit


class GatedEngine:
    """A dense-only engine whose searches block until `gate` opens, so a test decides when the
    worker is busy; `entered` is set when a batch reaches the worker (and "entered" is printed).
    A batch holding a query with "poison" in it raises, as a query the model chokes on would."""

    def __init__(self) -> None:
        self.hit = Hit("d1", 1.0)
        self.gate, self.entered = threading.Event(), threading.Event()
        self.batch_sizes: list[int] = []
        self.executors = {"dense": concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="rankkit-dense")}
        self.retrievers, self.reranker, self.reranker_record = {"dense": object()}, None, None
        self.modes, self.doc_texts = ["dense"], {}

    def workers(self, batch_wait_s: float):
        return {"dense": (self.dense_batch, batch_wait_s)}

    def dense_batch(self, items):
        self.batch_sizes.append(len(items))
        self.entered.set()
        print("entered", flush=True)
        self.gate.wait()
        if any("poison" in query for query, _ in items):
            raise ValueError("the model cannot encode this")
        return [[self.hit] for _ in items]

    def close(self) -> None:
        self.executors["dense"].shutdown(wait=False, cancel_futures=True)


if __name__ == "__main__":  # a real `serve` process (signals, exit) around an engine whose gate never opens
    from rankkit.serve.config import ServeConfig
    from rankkit.serve.server import run

    port, grace = int(sys.argv[1]), float(sys.argv[2])
    run(ServeConfig(indexes=("gated",), port=port, batch_max=1, graceful_timeout_s=grace), GatedEngine())
