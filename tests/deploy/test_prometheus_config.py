"""The shipped Prometheus config and the dashboards' PromQL, checked by promtool.

`promtool check rules` parses every expression of a rules file, so wrapping
each dashboard expression in a recording rule checks all of them - the vLLM
ones too - without a server.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_CONFIG = REPO / "configs" / "prometheus" / "prometheus.yml"
DASHBOARD_DIR = REPO / "configs" / "grafana" / "dashboards"
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "1h"}


def test_shipped_config_is_valid(tool):
    result = subprocess.run(
        [tool("promtool"), "check", "config", str(PROMETHEUS_CONFIG)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_config_scrapes_every_service_and_stand_alone_vllm():
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert {"judge", "chat", "trainer", "vllm"} <= set(jobs)
    (sd,) = jobs["vllm"]["file_sd_configs"]
    (targets_file,) = sd["files"]
    # The file sits in the folder compose mounts at /etc/prometheus.
    relative = Path(targets_file).relative_to("/etc/prometheus")
    assert yaml.safe_load((PROMETHEUS_CONFIG.parent / relative).read_text()) == []


def test_every_dashboard_expression_is_valid_promql(tool, tmp_path):
    rules = []
    for path in sorted(DASHBOARD_DIR.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                expr = target["expr"]
                for variable, value in GRAFANA_VARIABLES.items():
                    expr = expr.replace(variable, value)
                rules.append(
                    {"record": f"check:{path.stem}:{len(rules)}", "expr": expr}
                )
    assert len(rules) > 20
    rules_file = tmp_path / "rules.yml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "x", "rules": rules}]}))
    result = subprocess.run(
        [tool("promtool"), "check", "rules", str(rules_file)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout
