"""Micro-batching: concurrent requests share backend calls.

Each request's texts enter one bounded queue. A worker takes up to
``max_batch_size`` texts at a time, waiting at most ``max_wait_s`` after the
oldest one arrived for more to join, and hands them to the backend in a
single call; each text's result goes back to the request that sent it.
Sixty-four clients sending one text each thus cost about one backend call,
not sixty-four.

The queue is bounded: when a request's texts do not fit, ``submit`` raises
QueueFullError at once (503 with Retry-After) rather than letting latency
grow without limit.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from judge_server.errors import QueueFullError

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    """Group items from concurrent ``submit`` calls into ``process`` calls."""

    def __init__(
        self,
        process: Callable[[list[T]], Awaitable[list[R]]],
        *,
        max_batch_size: int,
        max_wait_s: float,
        max_queue: int,
        concurrency: int = 1,
        on_batch: Callable[[int, float], None] | None = None,
        on_depth: Callable[[int], None] | None = None,
    ) -> None:
        self._process = process
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self.concurrency = concurrency
        self._on_batch = on_batch or (lambda size, seconds: None)
        self._on_depth = on_depth or (lambda depth: None)
        self._queue: collections.deque[tuple[T, asyncio.Future[R], float]] = (
            collections.deque()
        )
        self._arrived = asyncio.Event()
        self._workers: list[asyncio.Task[None]] = []
        self._batch_seconds = 0.05  # running estimate, for Retry-After

    @property
    def depth(self) -> int:
        """Items waiting for a backend call."""
        return len(self._queue)

    async def start(self) -> None:
        if not self._workers:
            self._workers = [
                asyncio.create_task(self._work()) for _ in range(self.concurrency)
            ]

    async def close(self) -> None:
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._workers = []
        while self._queue:
            _, future, _ = self._queue.popleft()
            if not future.done():
                future.set_exception(QueueFullError("the judge is shutting down"))

    async def submit(self, items: Sequence[T]) -> list[R]:
        """Queue ``items`` and wait for their results, in order."""
        if not self._workers:
            raise RuntimeError("MicroBatcher.start() was not called")
        if self.depth + len(items) > self.max_queue:
            raise QueueFullError(
                f"the judge queue is full ({self.depth} of {self.max_queue} texts "
                "waiting): retry later or send fewer texts",
                retry_after=self._retry_after(),
            )
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        futures = [loop.create_future() for _ in items]
        self._queue.extend(
            (item, future, now) for item, future in zip(items, futures, strict=True)
        )
        self._on_depth(self.depth)
        self._arrived.set()
        return list(await asyncio.gather(*futures))

    def _retry_after(self) -> float:
        batches_ahead = self.depth / self.max_batch_size / self.concurrency
        return max(1.0, batches_ahead * self._batch_seconds)

    async def _work(self) -> None:
        while True:
            batch = await self._next_batch()
            started = time.perf_counter()
            try:
                results = await self._process([item for item, _, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(
                        f"backend returned {len(results)} results for "
                        f"{len(batch)} texts"
                    )
            except Exception as exc:  # fail this batch's requests, keep serving
                if not isinstance(exc, QueueFullError):
                    logger.exception("backend call for %d texts failed", len(batch))
                for _, future, _ in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            finally:
                seconds = time.perf_counter() - started
                self._batch_seconds = 0.8 * self._batch_seconds + 0.2 * seconds
                self._on_batch(len(batch), seconds)
            for (_, future, _), result in zip(batch, results, strict=True):
                if not future.done():  # the client may have gone away
                    future.set_result(result)

    async def _next_batch(self) -> list[tuple[T, asyncio.Future[R], float]]:
        while not self._queue:
            self._arrived.clear()
            await self._arrived.wait()
        # Wait for the batch to fill, but never longer than max_wait_s after
        # its oldest text arrived.
        deadline = self._queue[0][2] + self.max_wait_s
        while len(self._queue) < self.max_batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._arrived.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)
        size = min(self.max_batch_size, len(self._queue))
        batch = [self._queue.popleft() for _ in range(size)]
        self._on_depth(self.depth)
        return batch
