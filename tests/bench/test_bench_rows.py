"""Bench modules' rows: the shape bench/run.py renders, and the prefix cache."""

from __future__ import annotations

import asyncio
import json

import pytest

from bench import chat_bench, judge_bench
from bench.run import COLUMNS, render


def assert_rows(rows: list[dict]) -> None:
    assert rows
    for row in rows:
        assert tuple(row) == COLUMNS
        assert isinstance(row["value"], float | int), row
        assert row["unit"] and row["name"] and row["group"]
    render(rows)  # must not raise


def test_common_prefix_length_stops_at_the_first_difference():
    assert judge_bench.common_prefix_length([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3]]) == 2
    assert judge_bench.common_prefix_length([[7, 8], [7, 8, 9]]) == 2


def test_prefix_cache_rows_agree_with_the_full_pass_and_have_the_table_shape():
    rows = judge_bench.prefix_cache_rows(quick=True)
    assert_rows(rows)
    share, speed = (row["value"] for row in rows)
    assert 0.5 < share < 1  # the rubric dominates every judge prompt
    assert speed > 0


def test_chat_ratio_is_the_median_of_per_round_ratios():
    rounds = [
        {"bare": (100, 1.0), "stream": (100, 1.25), "plain": (100, 1.0)},
        {"bare": (100, 2.0), "stream": (100, 2.5), "plain": (100, 2.0)},  # slow
        {"bare": (100, 1.0), "stream": (100, 1.0), "plain": (100, 4.0)},  # noisy
    ]
    rows = chat_bench._rows(rounds, max_tokens=100)
    assert_rows(rows)
    assert [row["value"] for row in rows[1:]] == pytest.approx([0.8, 1.0])
    assert rows[0]["value"] == pytest.approx(100.0)
    assert "differ" not in rows[0]["note"]


async def _echo_server(status: str):
    """A keep-alive HTTP/1.1 server that answers each POST with its body."""

    async def handle(reader, writer):
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            body = await reader.readexactly(length)
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


def test_load_client_keeps_each_connection_alive_for_several_requests():
    async def scenario():
        server, url = await _echo_server("200 OK")
        async with server, judge_bench._LoadClient(url, connections=2) as load:
            first = await asyncio.gather(
                load.post(0, "/v1/score", {"texts": ["a"]}),
                load.post(1, "/v1/score", {"texts": ["b"]}),
            )
            again = await load.post(0, "/v1/score", {"texts": ["c"]})
        return first, again

    first, again = asyncio.run(scenario())
    assert [json.loads(b) for b in first] == [{"texts": ["a"]}, {"texts": ["b"]}]
    assert json.loads(again) == {"texts": ["c"]}


def test_load_client_raises_on_an_error_status():
    async def scenario():
        server, url = await _echo_server("503 Service Unavailable")
        async with server, judge_bench._LoadClient(url, connections=1) as load:
            await load.post(0, "/v1/score", {"texts": ["a"]})

    with pytest.raises(RuntimeError, match="503"):
        asyncio.run(scenario())
