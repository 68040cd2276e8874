import asyncio

import pytest

from judge_server.batcher import MicroBatcher
from judge_server.errors import QueueFullError


def run(coro):
    return asyncio.run(coro)


def test_concurrent_submits_share_backend_calls():
    calls: list[list[int]] = []

    async def process(items: list[int]) -> list[int]:
        calls.append(items)
        await asyncio.sleep(0.01)
        return [i * 10 for i in items]

    async def scenario():
        batcher = MicroBatcher(
            process, max_batch_size=16, max_wait_s=0.05, max_queue=100
        )
        await batcher.start()
        results = await asyncio.gather(*(batcher.submit([i]) for i in range(32)))
        await batcher.close()
        return results

    results = run(scenario())
    assert results == [[i * 10] for i in range(32)]
    assert len(calls) == 2 and all(len(c) == 16 for c in calls)


def test_results_return_to_their_request_in_order():
    async def process(items: list[str]) -> list[str]:
        return [s.upper() for s in items]

    async def scenario():
        batcher = MicroBatcher(process, max_batch_size=4, max_wait_s=0.01, max_queue=50)
        await batcher.start()
        out = await asyncio.gather(
            batcher.submit(["a", "b", "c"]), batcher.submit(["d", "e"])
        )
        await batcher.close()
        return out

    assert run(scenario()) == [["A", "B", "C"], ["D", "E"]]


def test_full_queue_refuses_at_once_with_retry_after():
    release = asyncio.Event()

    async def process(items: list[int]) -> list[int]:
        await release.wait()
        return items

    async def scenario():
        batcher = MicroBatcher(process, max_batch_size=2, max_wait_s=0.0, max_queue=4)
        await batcher.start()
        first = asyncio.create_task(batcher.submit([1, 2]))  # taken by the worker
        await asyncio.sleep(0.02)
        second = asyncio.create_task(batcher.submit([3, 4, 5, 6]))  # fills the queue
        await asyncio.sleep(0.02)
        with pytest.raises(QueueFullError) as refused:
            await batcher.submit([7])
        release.set()
        assert await first == [1, 2] and await second == [3, 4, 5, 6]
        await batcher.close()
        return refused.value

    refused = run(scenario())
    assert refused.status_code == 503 and int(refused.headers["Retry-After"]) >= 1


def test_backend_failure_fails_only_that_batch():
    async def process(items: list[int]) -> list[int]:
        if 0 in items:
            raise RuntimeError("backend down")
        return items

    async def scenario():
        batcher = MicroBatcher(process, max_batch_size=8, max_wait_s=0.0, max_queue=50)
        await batcher.start()
        with pytest.raises(RuntimeError, match="backend down"):
            await batcher.submit([0])
        ok = await batcher.submit([5])
        await batcher.close()
        return ok

    assert run(scenario()) == [5]


def test_lonely_request_waits_at_most_max_wait():
    async def process(items: list[int]) -> list[int]:
        return items

    async def scenario():
        batcher = MicroBatcher(
            process, max_batch_size=64, max_wait_s=0.05, max_queue=50
        )
        await batcher.start()
        loop = asyncio.get_running_loop()
        started = loop.time()
        await batcher.submit([1])
        elapsed = loop.time() - started
        await batcher.close()
        return elapsed

    assert run(scenario()) < 0.5
