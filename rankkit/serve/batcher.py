"""Micro-batching: concurrent requests wait a few milliseconds so one worker thread can encode
and search them together; a bounded queue refuses work beyond capacity instead of piling it up.

The wait adapts to the traffic: a batch waits only for as many requests as were in the server
at once (queued or being processed) since the previous batch started. A lone client is served at
once, with no added latency; with N concurrent clients a batch waits until the N clients whose
answers just went out have asked again, or until the deadline, whichever comes first.

A batch that raises is run again item by item, so one bad item fails only its own request."""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any, Callable, Sequence


class Overloaded(Exception):
    """The queue is full: the caller should answer 503 with Retry-After."""


class MicroBatcher:
    """Collect items after the first one until the batch holds as many as were in flight at once
    since the previous batch started (or `max_batch`, or `max_wait_s` has passed), then run
    `process(items) -> results` for all of them in one worker thread. Items already queued always
    join, up to `max_batch`."""

    def __init__(
        self,
        process: Callable[[Sequence[Any]], Sequence[Any]],
        executor: concurrent.futures.Executor,
        max_batch: int = 32,
        max_wait_s: float = 0.003,
        max_queue: int = 256,
        on_batch: Callable[[int], None] | None = None,
    ):
        self.process, self.executor = process, executor
        self.max_batch, self.max_wait_s, self.max_queue = max_batch, max_wait_s, max_queue
        self.on_batch = on_batch
        self.queue: asyncio.Queue | None = None
        self.worker: asyncio.Task | None = None
        self.in_flight = 0  # submitted and not yet answered
        self.peak_in_flight = 0  # the most in flight at once since the current batch started

    @property
    def depth(self) -> int:
        return self.queue.qsize() if self.queue is not None else 0

    def start(self) -> None:
        self.queue = asyncio.Queue()
        self.worker = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            await asyncio.gather(self.worker, return_exceptions=True)

    async def submit(self, item: Any) -> Any:
        assert self.queue is not None, "start() the batcher first"
        if self.queue.qsize() >= self.max_queue:
            raise Overloaded
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            await self.queue.put((item, future))
            return await future
        finally:
            self.in_flight -= 1

    async def _run(self) -> None:
        assert self.queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            deadline = loop.time() + self.max_wait_s
            expected, self.peak_in_flight = self.peak_in_flight, self.in_flight
            while len(batch) < self.max_batch:
                if not self.queue.empty():  # already waiting: take it even past the deadline (a busy
                    batch.append(self.queue.get_nowait())  # event loop must not shrink batches to 1)
                    continue
                remaining = deadline - loop.time()
                if len(batch) >= expected or remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self.queue.get(), remaining))
                except asyncio.TimeoutError:
                    break
            live = [(item, future) for item, future in batch if not future.cancelled()]
            if not live:
                continue
            if self.on_batch:
                self.on_batch(len(live))
            await self._answer(live)

    async def _answer(self, live: list[tuple[Any, asyncio.Future]]) -> None:
        """Run the batch; if it raises, run each item alone so the error reaches only the items
        that cause it (one poisoned query must not fail the 29 it was batched with)."""
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self.executor, self.process, [item for item, _ in live])
        except Exception as exc:
            if len(live) == 1:
                _settle(live[0][1], exception=exc)
                return
            for one in live:
                await self._answer([one])
            return
        for (_, future), result in zip(live, results):
            _settle(future, result=result)


def _settle(future: asyncio.Future, result: Any = None, exception: BaseException | None = None) -> None:
    if future.done():  # the request was cancelled meanwhile
        return
    if exception is not None:
        future.set_exception(exception)
    else:
        future.set_result(result)
