"""The judge's Prometheus metrics, all prefixed ``rlaif_judge_``.

Created in one registry per app (see services.common.metrics for how
several uvicorn workers add up). Labels have few values: routes are route
templates, invalid reasons are fixed codes, never raw error text.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


class JudgeMetrics:
    """Every metric the judge exports."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "rlaif_judge_requests",
            "HTTP requests by route and status code.",
            ["route", "status"],
            registry=registry,
        )
        self.texts_scored = Counter(
            "rlaif_judge_texts_scored",
            "Texts judged, by whether the judge gave a valid score.",
            ["valid"],
            registry=registry,
        )
        self.invalid_replies = Counter(
            "rlaif_judge_invalid_replies",
            "Judge replies without a valid score, by reason.",
            ["reason"],
            registry=registry,
        )
        self.request_latency = Histogram(
            "rlaif_judge_request_latency_seconds",
            "Time from receiving a request to answering it.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_latency = Histogram(
            "rlaif_judge_backend_batch_latency_seconds",
            "Time of one backend call on one micro-batch.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "rlaif_judge_batch_size",
            "Texts per backend call.",
            buckets=_BATCH_BUCKETS,
            registry=registry,
        )
        self.queue_depth = Gauge(
            "rlaif_judge_queue_depth",
            "Texts waiting for a backend call.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.score = Histogram(
            "rlaif_judge_score",
            "Valid scores given.",
            buckets=_SCORE_BUCKETS,
            registry=registry,
        )

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_latency.observe(seconds)
