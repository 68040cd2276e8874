"""One row Arrow cannot encode must not cost the rest of its file."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from services.common.request_log import RequestLog


def test_row_with_a_lone_surrogate_loses_only_itself(tmp_path):
    schema = pa.schema([("request_id", pa.string()), ("text", pa.string())])
    log = RequestLog(tmp_path, "svc", schema, flush_rows=100)
    log.append({"request_id": "a", "text": "tofu"})
    log.append({"request_id": "b", "text": "bad \ud800 text"})
    log.append({"request_id": "c", "text": "lentils"})

    path = log.flush()

    assert path is not None
    assert pq.read_table(path).column("request_id").to_pylist() == ["a", "c"]
