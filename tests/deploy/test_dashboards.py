"""Grafana provisioning: the dashboards Grafana loads are the ones we mean.

That every expression returns data is checked against a live Prometheus in
test_live_metrics.py; these tests check the files themselves.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "configs" / "grafana"
DASHBOARD_FILES = sorted((GRAFANA / "dashboards").glob("*.json"))
GRAFANA_VARIABLES = {"$__rate_interval", "$__range"}

# What the issue asks each dashboard to show, by words of the panel titles.
REQUIRED_PANELS = {
    "judge": ("requests per second", "p50", "p95", "p99", "score distribution")
    + ("invalid rate by reason", "batch size", "queue depth"),
    "training": ("reward mean", "std", "kl", "step time")
    + ("judge latency seen by the trainer", "invalid"),
    "chat": ("requests", "latency", "time to first token", "tokens per second")
    + ("adapter in use",),
    "vllm": ("running", "waiting", "kv cache", "prefix cache hit rate")
    + ("tokens", "end-to-end", "time to first token"),
}


def load_builder():
    path = GRAFANA / "build_dashboards.py"
    spec = importlib.util.spec_from_file_location("build_dashboards", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def dashboards() -> dict[str, dict]:
    return {path.stem: json.loads(path.read_text()) for path in DASHBOARD_FILES}


def grafana_mounts(compose) -> dict[str, str]:
    """Host path (relative to the repo) -> container path of Grafana's mounts."""
    mounts = {}
    for volume in compose["services"]["grafana"]["volumes"]:
        source, target = volume.split(":")[:2]
        if source.startswith("/"):
            mounts[str(Path(source).relative_to(REPO))] = target
    return mounts


def test_dashboard_files_are_what_the_builder_writes():
    """Edit build_dashboards.py and rerun it; never the JSON alone."""
    expected = load_builder().rendered_files()
    assert set(expected) == set(DASHBOARD_FILES)
    for path, text in expected.items():
        assert path.read_text() == text, f"{path.name} is stale: rerun the builder"


@pytest.mark.parametrize("name", sorted(REQUIRED_PANELS))
def test_dashboard_has_the_panels_the_issue_asks_for(name):
    board = dashboards()[name]
    titles = " | ".join(
        f"{p['title']} {t['legendFormat']}".lower()
        for p in board["panels"]
        for t in p["targets"]
    )
    missing = [word for word in REQUIRED_PANELS[name] if word not in titles]
    assert not missing


def test_every_panel_queries_the_provisioned_datasource():
    path = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
    (datasource,) = yaml.safe_load(path.read_text())["datasources"]
    for board in dashboards().values():
        for panel in board["panels"]:
            refs = [panel["datasource"]] + [t["datasource"] for t in panel["targets"]]
            assert {r["uid"] for r in refs} == {datasource["uid"]}, panel["title"]
            assert {r["type"] for r in refs} == {datasource["type"]}


def test_panels_have_unique_ids_and_do_not_overlap():
    for name, board in dashboards().items():
        cells: set[tuple[int, int]] = set()
        ids = [panel["id"] for panel in board["panels"]]
        assert len(ids) == len(set(ids)), name
        for panel in board["panels"]:
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, panel["title"]
            mine = {
                (x, y)
                for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])
            }
            assert not mine & cells, f"{name}: {panel['title']} overlaps"
            cells |= mine


def test_expressions_use_only_variables_grafana_defines():
    for board in dashboards().values():
        assert board["templating"]["list"] == []
        for panel in board["panels"]:
            for target in panel["targets"]:
                variables = set(re.findall(r"\$\w+", target["expr"]))
                assert variables <= GRAFANA_VARIABLES, target["expr"]


def test_every_panel_says_what_it_tells_you():
    for board in dashboards().values():
        for panel in board["panels"]:
            assert len(panel["description"].split()) >= 5, panel["title"]


def test_grafana_loads_the_dashboards_from_where_compose_mounts_them(compose):
    mounts = grafana_mounts(compose)
    assert mounts["configs/grafana/provisioning"] == "/etc/grafana/provisioning"
    provider_file = GRAFANA / "provisioning" / "dashboards" / "rlaif.yml"
    (provider,) = yaml.safe_load(provider_file.read_text())["providers"]
    assert provider["options"]["path"] == mounts["configs/grafana/dashboards"]
    home = compose["services"]["grafana"]["environment"][
        "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"
    ]
    relative = Path(home).relative_to(mounts["configs/grafana/dashboards"])
    assert (GRAFANA / "dashboards" / relative).is_file()


def test_deployment_docs_explain_every_panel():
    docs = (REPO / "docs" / "deployment.md").read_text()
    for board in dashboards().values():
        assert board["title"] in docs
        for panel in board["panels"]:
            assert panel["title"] in docs, f"{board['title']}: {panel['title']}"
