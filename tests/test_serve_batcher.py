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
