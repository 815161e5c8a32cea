"""The micro-batcher without a server: queries already queued join the batch even when the event
loop is too busy to come back before the batch-wait deadline."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time

from rankkit.serve.batcher import MicroBatcher


def test_busy_event_loop_still_batches_what_is_queued():
    sizes: list[int] = []

    def process(items):
        time.sleep(0.005)
        return [item * 10 for item in items]

    async def main() -> list[int]:
        executor = concurrent.futures.ThreadPoolExecutor(1)
        batcher = MicroBatcher(process, executor, max_batch=32, max_wait_s=0.003, on_batch=sizes.append)
        batcher.start()
        loop, busy = asyncio.get_running_loop(), [True]

        def hog() -> None:  # every loop iteration, other work takes 4 ms (> the 3 ms wait)
            started = time.perf_counter()
            while time.perf_counter() - started < 0.004:
                pass
            if busy[0]:
                loop.call_soon(hog)

        loop.call_soon(hog)
        try:
            return await asyncio.gather(*(batcher.submit(i) for i in range(64)))
        finally:
            busy[0] = False
            await batcher.stop()
            executor.shutdown()

    assert asyncio.run(main()) == [i * 10 for i in range(64)]
    assert sum(sizes) == 64
    assert sizes == [32, 32]  # before the fix: 32 batches of 2


def run_clients(clients: int, requests_each: int, max_wait_s: float) -> tuple[list[int], float]:
    """`clients` coroutines each send `requests_each` requests one after another; returns the batch
    sizes and the seconds it all took."""
    sizes: list[int] = []

    def process(items):
        time.sleep(0.002)
        return [item * 10 for item in items]

    async def main() -> float:
        executor = concurrent.futures.ThreadPoolExecutor(1)
        batcher = MicroBatcher(process, executor, max_batch=32, max_wait_s=max_wait_s, on_batch=sizes.append)
        batcher.start()

        async def client(c: int) -> None:
            for i in range(requests_each):
                assert await batcher.submit(c * 1000 + i) == (c * 1000 + i) * 10

        started = time.perf_counter()
        try:
            await asyncio.gather(*(client(c) for c in range(clients)))
            return time.perf_counter() - started
        finally:
            await batcher.stop()
            executor.shutdown()

    seconds = asyncio.run(main())
    return sizes, seconds


def test_lone_client_never_waits_for_company():
    sizes, seconds = run_clients(clients=1, requests_each=10, max_wait_s=0.5)
    assert sizes == [1] * 10
    assert seconds < 0.5  # a fixed wait would take 10 x 0.5 s


def test_concurrent_clients_are_batched_and_the_wait_ends_when_all_have_asked():
    sizes, seconds = run_clients(clients=4, requests_each=10, max_wait_s=0.5)
    assert sum(sizes) == 40
    assert sizes[-5:] == [4] * 5  # settles on one batch per round of the 4 clients
    assert seconds < 2.0  # waits end as soon as the 4th client asks, not at the 0.5 s deadline


def test_one_poisoned_item_fails_only_itself():
    # regression: one item that made the batch raise failed all 30 requests batched with it
    sizes: list[int] = []

    def process(items):
        if "poison" in items:
            raise UnicodeEncodeError("utf-8", "poison", 0, 1, "surrogates not allowed")
        return [item.upper() for item in items]

    async def main() -> list:
        executor = concurrent.futures.ThreadPoolExecutor(1)
        batcher = MicroBatcher(process, executor, max_batch=32, max_wait_s=0.05, on_batch=sizes.append)
        batcher.start()
        items = [f"q{i}" for i in range(29)]
        items.insert(17, "poison")
        try:
            return await asyncio.gather(*(batcher.submit(item) for item in items), return_exceptions=True)
        finally:
            await batcher.stop()
            executor.shutdown()

    results = asyncio.run(main())
    assert sizes == [30]  # they were batched together
    assert isinstance(results[17], UnicodeEncodeError)
    del results[17]
    assert results == [f"Q{i}" for i in range(29)]
