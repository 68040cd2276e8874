"""Schemathesis against a running service's own OpenAPI schema.

For every operation the schema lists, schemathesis generates valid bodies
(positive mode) and invalid ones (negative mode) and each is sent to the
real service over loopback. A pass means: no 5xx, every 4xx carries the
JSON error body ``{"error": {"message", ...}}``, and no body leaks a stack
trace or a server path. The number of examples is bounded per operation
and mode, so the run time is known in advance.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from reliability.security import is_json_error, leaks_in
from reliability.services import ServiceProcess

logger = logging.getLogger(__name__)


@dataclass
class FuzzReport:
    service: str
    operations: int = 0
    examples: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    server_errors: int = 0
    non_json_4xx: int = 0
    leaking_bodies: int = 0
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def fuzz_service(
    name: str, service: ServiceProcess, max_examples: int, timeout_s: float = 60.0
) -> FuzzReport:
    """Send ``max_examples`` positive and negative cases per operation."""
    import schemathesis
    from schemathesis import GenerationMode

    raw = httpx.get(f"{service.url}/openapi.json", headers=service.headers).json()
    schema = schemathesis.openapi.from_dict(raw)
    report = FuzzReport(service=name)
    statuses: Counter[str] = Counter()
    for result in schema.get_all_operations():
        operation = result.ok()
        report.operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _run_operation(
                operation, mode, service, max_examples, timeout_s, report, statuses
            )
    report.statuses = dict(sorted(statuses.items()))
    return report


def _run_operation(
    operation: Any,
    mode: Any,
    service: ServiceProcess,
    max_examples: int,
    timeout_s: float,
    report: FuzzReport,
    statuses: Counter[str],
) -> None:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable

    label = f"{operation.method.upper()} {operation.path} ({mode.value})"

    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def probe(case: Any) -> None:
        headers = {**(case.headers or {}), **service.headers}
        response = case.call(base_url=service.url, headers=headers, timeout=timeout_s)
        report.examples += 1
        statuses[str(response.status_code)] += 1
        _judge_response(label, case, response, report)

    try:
        probe()
    except Unsatisfiable:
        # A GET without parameters has no invalid form: nothing to send.
        logger.info("no %s examples exist for %s", mode.value, label)


def _judge_response(label: str, case: Any, response: Any, report: FuzzReport) -> None:
    status = response.status_code
    text = response.text
    if status >= 500:
        report.server_errors += 1
        report.problems.append(
            f"{label} -> {status}: {text[:200]!r} for {case.body!r:.200}"
        )
    elif status >= 400 and not is_json_error(_as_httpx(response)):
        report.non_json_4xx += 1
        report.problems.append(
            f"{label} -> {status} without a JSON error: {text[:200]!r}"
        )
    if leaks_in(text):
        report.leaking_bodies += 1
        report.problems.append(f"{label} -> body leaks {leaks_in(text)}")


def _as_httpx(response: Any) -> httpx.Response:
    return httpx.Response(response.status_code, content=response.content)
