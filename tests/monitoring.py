"""The dashboards and alert rules as tests read them: files, panels, queries, rules."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS_DIR = ROOT / "infra" / "grafana" / "dashboards"
ALERTS_FILE = ROOT / "infra" / "prometheus" / "alerts.yml"
HOME_DASHBOARD = DASHBOARDS_DIR / "pipeline.json"


def dashboards() -> dict[str, dict[str, Any]]:
    """File name -> dashboard, for every dashboard Grafana provisions."""
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS_DIR.glob("*.json"))}


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """The panels that query (rows left out)."""
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def variable_queries(dashboard: dict[str, Any]) -> list[str]:
    """The metric each template variable lists label values of."""
    queries = []
    for var in dashboard["templating"]["list"]:
        match = re.fullmatch(r"label_values\((\w+),\s*\w+\)", var["definition"])
        assert match, f"template variable {var['name']}: unexpected query {var['definition']!r}"
        queries.append(match.group(1))
    return queries


def grafana_to_promql(expr: str, rate_interval: str = "5m") -> str:
    """Replace Grafana's template variables so the query is plain PromQL (variables that
    pick label values match everything, as "All" does)."""
    durations = {"__rate_interval": rate_interval, "__interval": "1m", "__range": "1h"}

    def value(match: re.Match[str]) -> str:
        return durations.get(match.group(1) or match.group(2), ".*")

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", value, expr)


def all_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS_FILE.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]
