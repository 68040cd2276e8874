"""Buffered Parquet request logs that readers can open at any moment.

Rows are kept in memory and written as one Parquet file every
``flush_rows`` rows, every ``flush_seconds`` seconds (once :meth:`start` ran)
and at :meth:`close`. A Parquet file is unreadable until its footer is
written, so each file is written under a hidden temporary name in the same
folder and renamed with ``os.replace`` (atomic on POSIX) when complete: a
reader listing the folder while the service runs sees only whole files,
and a crash loses at most the rows still in the buffer.

Layout: ``<root>/<service>/date=YYYY-MM-DD/<timestamp>-<pid>-<seq>.parquet``
(UTC), a hive partitioning that ``pyarrow.dataset`` and pandas read
directly; the leading dot of temporary files makes those readers skip them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

logger = logging.getLogger(__name__)


class RequestLog:
    """Append rows of ``schema``; they reach disk in complete Parquet files."""

    def __init__(
        self,
        root: Path,
        service: str,
        schema: pa.Schema,
        flush_rows: int = 256,
        flush_seconds: float = 5.0,
    ) -> None:
        if flush_rows < 1:
            raise ValueError(f"flush_rows must be >= 1, got {flush_rows!r}")
        if flush_seconds <= 0:
            raise ValueError(f"flush_seconds must be > 0, got {flush_seconds!r}")
        self.folder = Path(root) / service
        self.schema = schema
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self._fields = set(schema.names)
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._seq = itertools.count()
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """Rows in the buffer, not yet on disk."""
        return len(self._rows)

    def append(self, row: dict[str, Any]) -> None:
        """Buffer one row; write a file when the buffer reaches ``flush_rows``.

        Raises ValueError for a column the schema does not have, so a typo
        fails at the call site instead of dropping a whole file at flush.
        Missing columns are written as null.
        """
        unknown = set(row) - self._fields
        if unknown:
            raise ValueError(
                f"request log row has columns {sorted(unknown)!r} that are not "
                f"in the schema {sorted(self._fields)!r}"
            )
        with self._lock:
            self._rows.append(row)
            full = len(self._rows) >= self.flush_rows
        if full:
            self.flush()

    def flush(self) -> Path | None:
        """Write the buffered rows as one complete file; return its path."""
        with self._lock:
            rows, self._rows = self._rows, []
        rows = _encodable_rows(rows)
        if not rows:
            return None
        with self._write_lock:
            return self._write(rows)

    async def start(self) -> None:
        """Flush every ``flush_seconds`` seconds until :meth:`close`."""
        if self._task is None:
            self._task = asyncio.create_task(self._flush_periodically())

    async def close(self) -> None:
        """Stop the periodic flush and write what is left."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await asyncio.to_thread(self.flush)

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.flush_seconds)
            try:
                # Writing Parquet is blocking I/O: keep it off the event loop.
                await asyncio.to_thread(self.flush)
            except Exception:
                logger.exception("request log flush to %s failed", self.folder)

    def _write(self, rows: list[dict[str, Any]]) -> Path:
        now = datetime.now(timezone.utc)
        folder = self.folder / f"date={now:%Y-%m-%d}"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{now:%Y%m%dT%H%M%S%fZ}-{os.getpid()}-{next(self._seq):06d}.parquet"
        final = folder / name
        temporary = folder / f".{name}.tmp"
        try:
            table = pa.Table.from_pylist(rows, schema=self.schema)
            pq.write_table(table, temporary)
            os.replace(temporary, final)
        except Exception:
            temporary.unlink(missing_ok=True)
            logger.error("could not write %d request log rows to %s", len(rows), final)
            raise
        return final


def _encodable_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows whose strings are valid UTF-8; the others dropped, warned.

    Client text can carry an unpaired surrogate (valid JSON, ``"\\ud800"``)
    that Arrow cannot encode; without this one such row would cost every
    row of its file.
    """
    kept = [row for row in rows if _encodable(row)]
    if len(kept) < len(rows):
        logger.warning(
            "%d request log rows dropped: a string is not valid UTF-8",
            len(rows) - len(kept),
        )
    return kept


def _encodable(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_encodable(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_encodable(v) for v in value)
    return True
