"""Prometheus metrics of the chat service, all prefixed ``rlaif_chat_``.

The ``model`` label is the name the client asked for (the base or an
adapter), never free text from a failed request, so the label set stays as
small as the set of loaded adapters.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNKNOWN_MODEL = "<unknown>"


class ChatMetrics:
    """The service's counters, histograms and gauges in one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "rlaif_chat_requests",
            "Chat completion requests by model and HTTP status.",
            ["model", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "rlaif_chat_request_latency_seconds",
            "Time from request arrival to the last token.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.ttft = Histogram(
            "rlaif_chat_time_to_first_token_seconds",
            "Time from request arrival to the first generated token.",
            ["model"],
            buckets=TTFT_BUCKETS,
            registry=registry,
        )
        self.generated_tokens = Counter(
            "rlaif_chat_generated_tokens",
            "Completion tokens generated.",
            ["model"],
            registry=registry,
        )
        self.prompt_tokens = Counter(
            "rlaif_chat_prompt_tokens",
            "Prompt tokens processed.",
            ["model"],
            registry=registry,
        )
        self.in_flight = Gauge(
            "rlaif_chat_in_flight_requests",
            "Requests queued or generating.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.adapter_in_use = Gauge(
            "rlaif_chat_adapter_in_use",
            "Requests queued or generating on each adapter ('' is the base).",
            ["adapter"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.adapter_loaded = Gauge(
            "rlaif_chat_adapter_loaded",
            "1 while an adapter is loaded, 0 after it was unloaded.",
            ["adapter"],
            registry=registry,
            multiprocess_mode="livemax",
        )
