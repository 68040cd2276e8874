"""Write the Grafana dashboards of the RLAIF stack from one short spec.

Grafana's dashboard JSON is long and repetitive (grid positions, datasource
references, field defaults); writing it by hand invites a panel that points at
the wrong datasource or overlaps another. The spec below holds only what
matters - each panel's title, what it tells an operator, its PromQL - and
`render` turns it into the files under `configs/grafana/dashboards/`, which
Grafana provisions at start (see `provisioning/dashboards/rlaif.yml`).

Run it after editing the spec; tests/deploy checks that the files match it
and that every expression returns data from the running services:

    python configs/grafana/build_dashboards.py

Metric names come from the services' code: `judge_server/metrics.py`,
`services/chat/metrics.py` and `trainer/monitor.py` (gauges named
`rlaif_trainer_<metric>` after the slash-namespaced training metrics).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
# Grafana fills these in; tests/deploy substitutes them the same way.
RATE = "$__rate_interval"
RANGE = "$__range"
SCORING_ROUTES = '{route=~"/v1/score|/get_reward"}'


@dataclass(frozen=True)
class Query:
    """One PromQL expression of a panel and its legend."""

    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    """A panel; `description` is what it tells you, shown on hover."""

    title: str
    description: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: str = "timeseries"  # timeseries | stat | bargauge
    width: int = 12


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...]
    tags: tuple[str, ...] = field(default=("rlaif",))


def quantiles(
    metric: str,
    by: str = "",
    qs: tuple[float, ...] = (0.5, 0.95, 0.99),
    selector: str = "",
) -> tuple[Query, ...]:
    """p50/p95/p99 (by default) of a histogram, one query each."""
    group = f"le, {by}" if by else "le"
    suffix = f" {{{{{by}}}}}" if by else ""
    return tuple(
        Query(
            f"histogram_quantile({q}, sum by ({group}) "
            f"(rate({metric}_bucket{selector}[{RATE}])))",
            f"p{round(q * 100)}{suffix}",
        )
        for q in qs
    )


def mean_of(metric: str, legend: str) -> Query:
    """The mean of a histogram's observations over the rate window."""
    return Query(
        f"sum(rate({metric}_sum[{RATE}])) / sum(rate({metric}_count[{RATE}]))",
        legend,
    )


JUDGE = Dashboard(
    uid="rlaif-judge",
    title="RLAIF / Judge",
    description="The judge server: load, latency, what it scores and what fails.",
    panels=(
        Panel(
            "Requests per second",
            "HTTP requests per second by route and status code. A rise in 4xx "
            "means clients send bad requests; 5xx or 503 means the judge is "
            "failing or overloaded.",
            (
                Query(
                    f"sum by (route, status) "
                    f"(rate(rlaif_judge_requests_total[{RATE}]))",
                    "{{route}} {{status}}",
                ),
            ),
            unit="reqps",
        ),
        Panel(
            "Texts scored per second",
            "Candidate texts scored per second, valid and invalid: the judge's "
            "real throughput (one request may carry many texts).",
            (
                Query(
                    f"sum by (valid) (rate(rlaif_judge_texts_scored_total[{RATE}]))",
                    "valid={{valid}}",
                ),
            ),
            unit="ops",
        ),
        Panel(
            "Request latency p50 / p95 / p99",
            "Time from request received to response sent, per scoring route. "
            "p99 far above p50 points at queueing: look at queue depth and "
            "the backend batch latency.",
            quantiles(
                "rlaif_judge_request_latency_seconds",
                by="route",
                selector=SCORING_ROUTES,
            ),
            unit="s",
        ),
        Panel(
            "Score distribution",
            "How many valid scores fell into each bucket of the 0..1 scale "
            "over the dashboard's time range (buckets are cumulative: each "
            "bar counts the scores up to its bound). A policy that learns the "
            "rubric moves mass to the right; a judge stuck on one value shows "
            "a single step.",
            (
                Query(
                    f"sum by (le) (increase(rlaif_judge_score_bucket[{RANGE}]))",
                    "{{le}}",
                ),
            ),
            kind="bargauge",
        ),
        Panel(
            "Invalid rate by reason",
            "Share of texts the judge could not score, by reason (unparseable "
            "reply, no score token, backend error...). Invalid scores are "
            "never replaced by a default: the trainer drops or penalises "
            "them, so anything above a few percent needs a look.",
            (
                Query(
                    f"1 - sum(rate(rlaif_judge_texts_scored_total"
                    f'{{valid="true"}}[{RATE}])) '
                    f"/ sum(rate(rlaif_judge_texts_scored_total[{RATE}]))",
                    "all reasons",
                ),
                Query(
                    f"sum by (reason) "
                    f"(rate(rlaif_judge_invalid_replies_total[{RATE}])) "
                    f"/ ignoring (reason) group_left "
                    f"sum(rate(rlaif_judge_texts_scored_total[{RATE}]))",
                    "{{reason}}",
                ),
            ),
            unit="percentunit",
        ),
        Panel(
            "Batch size",
            "Texts per backend call after micro-batching. Small batches under "
            "load mean the batcher's wait is too short to fill them.",
            (
                mean_of("rlaif_judge_batch_size", "mean"),
                *quantiles("rlaif_judge_batch_size", qs=(0.5, 0.95)),
            ),
        ),
        Panel(
            "Backend batch latency",
            "Time of one backend call on one micro-batch: the model's own "
            "speed, without queueing or HTTP.",
            quantiles("rlaif_judge_backend_batch_latency_seconds", qs=(0.5, 0.95)),
            unit="s",
        ),
        Panel(
            "Queue depth",
            "Texts waiting for the backend. Steady growth means the judge is "
            "slower than its clients: add replicas or GPUs.",
            (Query("sum(rlaif_judge_queue_depth)", "queued"),),
        ),
    ),
)

TRAINING = Dashboard(
    uid="rlaif-training",
    title="RLAIF / Training",
    description="The PPO / GRPO / RLOO run: reward, KL, speed and judge health.",
    panels=(
        Panel(
            "Reward mean and std",
            "Mean and spread of the per-response rewards (logit of the judge "
            "score) of each step. The mean should climb; a std that collapses "
            "to 0 means the policy gives one answer to everything.",
            (
                Query("rlaif_trainer_reward_mean", "mean"),
                Query("rlaif_trainer_reward_std", "std"),
            ),
        ),
        Panel(
            "KL to the reference",
            "KL divergence between the policy and the frozen base. It grows "
            "slowly in a healthy run; a jump means the policy is drifting "
            "(raise kl_coef); persistently negative KL points at a wrong "
            "reference or suppressed EOS.",
            (Query("rlaif_trainer_objective_kl", "kl"),),
        ),
        Panel(
            "Judge score mean",
            "Mean raw judge score (0..1) of each step's responses: the number "
            "the rubric is about, before the logit.",
            (Query("rlaif_trainer_judge_score_mean", "score"),),
            unit="percentunit",
        ),
        Panel(
            "Step time",
            "Seconds per training step, and the part of it spent sampling "
            "responses. Compare with the judge latency panel to see how much "
            "of a step is spent waiting for the judge.",
            (
                Query("rlaif_trainer_time_step_s", "step"),
                Query("rlaif_trainer_time_generation_s", "generation"),
            ),
            unit="s",
        ),
        Panel(
            "Judge latency seen by the trainer",
            "Seconds the trainer spent waiting for judge scores in the last "
            "step, retries included. Much higher than the judge's own latency "
            "means network trouble or retries.",
            (Query("rlaif_trainer_judge_latency_s", "judge"),),
            unit="s",
        ),
        Panel(
            "Invalid score rate",
            "Share of responses the judge could not score: over the whole run "
            "(the trainer stops past judge.max_invalid_rate) and in the last "
            "step.",
            (
                Query("rlaif_trainer_judge_invalid_rate", "run"),
                Query("rlaif_trainer_judge_invalid_step", "last step"),
            ),
            unit="percentunit",
        ),
        Panel(
            "Response length and missing EOS",
            "Mean response length in tokens, and the share of responses that "
            "never reached EOS. Length creeping up can be the policy gaming "
            "the judge's verbosity bias.",
            (
                Query("rlaif_trainer_response_length_mean", "length"),
                Query("rlaif_trainer_response_missing_eos_rate", "missing EOS"),
            ),
        ),
        Panel(
            "Step",
            "The last completed optimisation step.",
            (Query("rlaif_trainer_step", "step"),),
            kind="stat",
        ),
    ),
)

CHAT = Dashboard(
    uid="rlaif-chat",
    title="RLAIF / Chat",
    description="The chat service that serves the tuned adapter.",
    panels=(
        Panel(
            "Requests per second",
            "Chat completions per second by model (base or adapter name) and "
            "status. 4xx are client mistakes (unknown model, too long a "
            "prompt); 5xx are ours.",
            (
                Query(
                    f"sum by (model, status) (rate(rlaif_chat_requests_total[{RATE}]))",
                    "{{model}} {{status}}",
                ),
            ),
            unit="reqps",
        ),
        Panel(
            "Request latency p50 / p95 / p99",
            "Time to the last token of a completion.",
            quantiles("rlaif_chat_request_latency_seconds"),
            unit="s",
        ),
        Panel(
            "Time to first token",
            "Time from request to the first generated token: what a user of "
            "a streamed chat feels as responsiveness.",
            quantiles("rlaif_chat_time_to_first_token_seconds", qs=(0.5, 0.95)),
            unit="s",
        ),
        Panel(
            "Tokens per second",
            "Generated and prompt tokens per second by model, all requests "
            "together: the service's throughput.",
            (
                Query(
                    f"sum by (model) (rate(rlaif_chat_generated_tokens_total[{RATE}]))",
                    "{{model}} generated",
                ),
                Query(
                    f"sum by (model) (rate(rlaif_chat_prompt_tokens_total[{RATE}]))",
                    "{{model}} prompt",
                ),
            ),
            unit="short",
        ),
        Panel(
            "Adapter in use",
            "Requests queued or generating on each adapter ('base' is the "
            "model without one): which tuned adapter takes the traffic, for "
            "example after a hot load.",
            (
                Query(
                    "label_replace(sum by (adapter) (rlaif_chat_adapter_in_use), "
                    '"adapter", "base", "adapter", "")',
                    "{{adapter}}",
                ),
            ),
        ),
        Panel(
            "Adapters loaded",
            "1 for each adapter the service holds, 0 once it was unloaded.",
            (Query("max by (adapter) (rlaif_chat_adapter_loaded)", "{{adapter}}"),),
            kind="stat",
        ),
        Panel(
            "Requests in flight",
            "Requests queued or generating right now, all models together.",
            (Query("sum(rlaif_chat_in_flight_requests)", "in flight"),),
        ),
    ),
)

VLLM = Dashboard(
    uid="rlaif-vllm",
    title="RLAIF / vLLM engines",
    description=(
        "The vLLM engines inside the judge and the chat service (GPU "
        "deployment only: the CPU profile has no vLLM, so these panels stay "
        "empty there). `job` tells the engines apart."
    ),
    tags=("rlaif", "gpu"),
    panels=(
        Panel(
            "Requests running / waiting",
            "Sequences in the running batch and waiting for a slot. Waiting "
            "above zero for long means the engine is saturated.",
            (
                Query("sum by (job) (vllm:num_requests_running)", "{{job}} running"),
                Query("sum by (job) (vllm:num_requests_waiting)", "{{job}} waiting"),
            ),
        ),
        Panel(
            "KV cache usage",
            "Share of the KV cache in use. Near 100% the engine preempts "
            "sequences and throughput drops: lower max_num_seqs or add GPUs.",
            (Query("max by (job) (vllm:kv_cache_usage_perc)", "{{job}}"),),
            unit="percentunit",
        ),
        Panel(
            "Prefix cache hit rate",
            "Share of prompt tokens served from the prefix cache. The judge's "
            "rubric prompt is the same for every text, so its hit rate should "
            "be high; a low one means the prompt prefix varies.",
            (
                Query(
                    f"sum by (job) (rate(vllm:prefix_cache_hits_total[{RATE}])) "
                    f"/ sum by (job) (rate(vllm:prefix_cache_queries_total[{RATE}]))",
                    "{{job}}",
                ),
            ),
            unit="percentunit",
        ),
        Panel(
            "Tokens per second",
            "Prompt (prefill) and generated (decode) tokens per second.",
            (
                Query(
                    f"sum by (job) (rate(vllm:prompt_tokens_total[{RATE}]))",
                    "{{job}} prompt",
                ),
                Query(
                    f"sum by (job) (rate(vllm:generation_tokens_total[{RATE}]))",
                    "{{job}} generated",
                ),
            ),
        ),
        Panel(
            "End-to-end request latency",
            "Engine time per request, queueing included.",
            quantiles("vllm:e2e_request_latency_seconds", by="job", qs=(0.5, 0.95)),
            unit="s",
        ),
        Panel(
            "Time to first token",
            "Engine time to the first token: prefill plus queueing.",
            quantiles("vllm:time_to_first_token_seconds", by="job", qs=(0.5, 0.95)),
            unit="s",
        ),
    ),
)

DASHBOARDS = {"judge": JUDGE, "training": TRAINING, "chat": CHAT, "vllm": VLLM}


def render_panel(panel: Panel, panel_id: int, x: int, y: int) -> dict:
    """One panel of Grafana's dashboard JSON (schema version 39)."""
    targets = [
        {
            "datasource": DATASOURCE,
            "expr": query.expr,
            "legendFormat": query.legend or "__auto",
            "refId": chr(ord("A") + index),
            **(
                {"format": "heatmap", "instant": True}
                if panel.kind == "bargauge"
                else {}
            ),
        }
        for index, query in enumerate(panel.queries)
    ]
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {},
        "targets": targets,
    }


def render(dashboard: Dashboard) -> dict:
    """The whole dashboard; panels flow left to right, two per row."""
    panels, x, y = [], 0, 0
    for panel_id, panel in enumerate(dashboard.panels, start=1):
        if x + panel.width > 24:
            x, y = 0, y + 8
        panels.append(render_panel(panel, panel_id, x, y))
        x += panel.width
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": list(dashboard.tags),
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "timezone": "browser",
        "templating": {"list": []},
        "annotations": {"list": []},
        "panels": panels,
    }


def rendered_files() -> dict[Path, str]:
    """Each dashboard file's path and exact content."""
    return {
        DASHBOARD_DIR / f"{name}.json": json.dumps(render(board), indent=2) + "\n"
        for name, board in DASHBOARDS.items()
    }


def main() -> int:
    DASHBOARD_DIR.mkdir(exist_ok=True)
    for path, text in rendered_files().items():
        path.write_text(text)
        sys.stdout.write(f"wrote {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
