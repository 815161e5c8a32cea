"""Prometheus text-format metrics: request and error counters, latency histograms, queue depth."""

from __future__ import annotations

import threading
from collections import defaultdict

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.latency_counts: dict[str, list[int]] = defaultdict(lambda: [0] * len(LATENCY_BUCKETS))
        self.latency_sum: dict[str, float] = defaultdict(float)
        self.latency_total: dict[str, int] = defaultdict(int)
        self.queue_depth = 0
        self.batch_sizes: list[int] = [0, 0]  # batches run, queries in them

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[endpoint, status] += 1
            counts = self.latency_counts[endpoint]
            for i, bound in enumerate(LATENCY_BUCKETS):
                if seconds <= bound:
                    counts[i] += 1
            self.latency_sum[endpoint] += seconds
            self.latency_total[endpoint] += 1

    def observe_batch(self, size: int) -> None:
        with self._lock:
            self.batch_sizes[0] += 1
            self.batch_sizes[1] += size

    def render(self) -> str:
        with self._lock:
            lines = [
                "# HELP rankkit_requests_total HTTP requests by endpoint and status.",
                "# TYPE rankkit_requests_total counter",
            ]
            lines += [
                f'rankkit_requests_total{{endpoint="{e}",status="{s}"}} {n}'
                for (e, s), n in sorted(self.requests.items())
            ]
            lines += [
                "# HELP rankkit_errors_total HTTP responses with status >= 400.",
                "# TYPE rankkit_errors_total counter",
            ]
            errors: dict[str, int] = defaultdict(int)
            for (e, s), n in self.requests.items():
                if s >= 400:
                    errors[e] += n
            lines += [f'rankkit_errors_total{{endpoint="{e}"}} {n}' for e, n in sorted(errors.items())]
            lines += ["# HELP rankkit_request_seconds Request latency.", "# TYPE rankkit_request_seconds histogram"]
            for endpoint in sorted(self.latency_total):
                for bound, count in zip(LATENCY_BUCKETS, self.latency_counts[endpoint]):
                    lines.append(f'rankkit_request_seconds_bucket{{endpoint="{endpoint}",le="{bound}"}} {count}')
                lines.append(
                    f'rankkit_request_seconds_bucket{{endpoint="{endpoint}",le="+Inf"}} {self.latency_total[endpoint]}'
                )
                lines.append(f'rankkit_request_seconds_sum{{endpoint="{endpoint}"}} {self.latency_sum[endpoint]:.6f}')
                lines.append(f'rankkit_request_seconds_count{{endpoint="{endpoint}"}} {self.latency_total[endpoint]}')
            lines += [
                "# HELP rankkit_queue_depth Queries waiting for a search worker.",
                "# TYPE rankkit_queue_depth gauge",
                f"rankkit_queue_depth {self.queue_depth}",
                "# HELP rankkit_batches_total Micro-batches searched.",
                "# TYPE rankkit_batches_total counter",
                f"rankkit_batches_total {self.batch_sizes[0]}",
                "# HELP rankkit_batched_queries_total Queries searched in micro-batches.",
                "# TYPE rankkit_batched_queries_total counter",
                f"rankkit_batched_queries_total {self.batch_sizes[1]}",
            ]
            return "\n".join(lines) + "\n"
