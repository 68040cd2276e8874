"""Keys, body limits and error bodies of the running services."""

from __future__ import annotations

import time

import httpx
import pytest
from reliability_constants import BODY_LIMIT, CHAT_KEY, JUDGE_KEY

from reliability import security

SERVICES = {
    "judge": ("/v1/score", security.JUDGE_BAD_REQUESTS, JUDGE_KEY),
    "chat": ("/v1/chat/completions", security.CHAT_BAD_REQUESTS, CHAT_KEY),
}


@pytest.fixture(params=sorted(SERVICES))
def target(request):
    service = request.getfixturevalue(request.param)
    return request.param, service, *SERVICES[request.param]


def test_every_route_but_the_probes_needs_the_key(target):
    name, service, *_ = target
    report = security.SecurityReport(service=name)

    security.check_auth(service, report)

    assert report.problems == []
    assert report.routes_checked == report.refused_401 >= 10
    assert report.open_probes_ok == 2
    assert (
        httpx.get(f"{service.url}/metrics", headers=service.headers).status_code == 200
    )


def test_oversize_body_is_refused_with_413_before_parsing(target):
    name, service, path, *_ = target
    report = security.SecurityReport(service=name)

    security.check_body_limit(service, path, BODY_LIMIT, report)

    assert report.problems == []
    assert report.oversize_declared_status == report.oversize_chunked_status == 413


def test_bad_requests_get_json_4xx_without_traces_or_paths(target):
    name, service, _, bad_requests, _ = target
    report = security.SecurityReport(service=name)

    security.check_error_bodies(service, bad_requests, report)

    assert report.problems == []


def test_the_key_reaches_neither_logs_nor_parquet_rows(target):
    name, service, _, _, key = target
    security.exercise(service, name)
    httpx.get(f"{service.url}/v1/models", headers={"Authorization": "Bearer wrong-1"})
    time.sleep(1.5)  # two flush periods: the rows are on disk
    report = security.SecurityReport(service=name)

    security.check_key_absent(
        service, service.log_path.parent / "logs", [key, "wrong-1"], report
    )

    assert report.problems == []
    assert report.parquet_rows_searched >= 3  # the search had rows to look at


def test_leak_detector_sees_a_trace_and_a_server_path():
    body = 'Traceback (most recent call last):\n  File "/srv/app.py", line 3'
    assert "Traceback" in security.leaks_in(body)
    assert security.leaks_in(f"{security.REPO_ROOT}/judge_server/api.py")
    assert security.leaks_in('{"error": {"message": "texts: too long"}}') == []
