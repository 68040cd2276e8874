import asyncio
import os
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from services.common.request_log import RequestLog

SCHEMA = pa.schema([("request_id", pa.string()), ("score", pa.float64())])


def parquet_files(root: Path) -> list[Path]:
    return sorted(root.glob("svc/date=*/*.parquet"))


def test_rows_reach_disk_only_in_complete_files_named_by_date_pid_seq(tmp_path):
    log = RequestLog(tmp_path, "svc", SCHEMA, flush_rows=3)
    log.append({"request_id": "a", "score": 0.5})
    log.append({"request_id": "b", "score": None})
    assert parquet_files(tmp_path) == []

    log.append({"request_id": "c"})  # third row triggers the flush

    (path,) = parquet_files(tmp_path)
    assert path.parent.name.startswith("date=")
    assert f"-{os.getpid()}-000000.parquet" in path.name
    table = pq.read_table(path)
    assert table.column("request_id").to_pylist() == ["a", "b", "c"]
    assert table.column("score").to_pylist() == [0.5, None, None]
    assert log.pending == 0


def test_unknown_column_is_refused_at_append(tmp_path):
    log = RequestLog(tmp_path, "svc", SCHEMA)
    with pytest.raises(ValueError, match="scor"):
        log.append({"request_id": "a", "scor": 1.0})


def test_periodic_flush_and_close_write_what_is_buffered(tmp_path):
    async def scenario() -> tuple[int, int]:
        log = RequestLog(tmp_path, "svc", SCHEMA, flush_rows=1000, flush_seconds=0.05)
        await log.start()
        log.append({"request_id": "x", "score": 0.1})
        await asyncio.sleep(0.3)
        after_timer = len(parquet_files(tmp_path))
        log.append({"request_id": "y", "score": 0.2})
        await log.close()
        return after_timer, len(parquet_files(tmp_path))

    after_timer, after_close = asyncio.run(scenario())
    assert after_timer == 1
    assert after_close == 2
    rows = ds.dataset(tmp_path / "svc", partitioning="hive").to_table()
    assert sorted(rows.column("request_id").to_pylist()) == ["x", "y"]


def test_folder_stays_readable_while_a_writer_flushes(tmp_path):
    # A reader that opens every visible file while another thread writes
    # must never meet a partial Parquet file.
    log = RequestLog(tmp_path, "svc", SCHEMA, flush_rows=50)
    (tmp_path / "svc").mkdir()
    stop = threading.Event()

    def write() -> None:
        for i in range(2000):
            log.append({"request_id": str(i), "score": i / 2000})
        log.flush()
        stop.set()

    writer = threading.Thread(target=write)
    writer.start()
    reads = 0
    while not stop.is_set() or reads == 0:
        dataset = ds.dataset(tmp_path / "svc", partitioning="hive")
        dataset.to_table()  # raises on a corrupt or partial file
        reads += 1
    writer.join()
    total = ds.dataset(tmp_path / "svc", partitioning="hive").count_rows()
    assert total == 2000
    assert not list(tmp_path.glob("svc/date=*/.*.tmp"))


def test_failed_write_leaves_no_temporary_file(tmp_path):
    log = RequestLog(tmp_path, "svc", SCHEMA)
    log.append({"request_id": "a", "score": "not a number"})
    with pytest.raises(pa.ArrowInvalid):
        log.flush()
    assert list(tmp_path.rglob("*")) and not list(tmp_path.rglob("*.tmp"))
    assert parquet_files(tmp_path) == []
