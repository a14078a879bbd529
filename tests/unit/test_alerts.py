"""The alert rules behave: ``promtool test rules`` over infra/prometheus/alerts.test.yml,
and that file has, for every alert, a case where it fires and one where it stays silent.

promtool comes from Debian's ``prometheus`` package (``scripts/system-deps.sh test``,
which ``make test`` runs); it is never skipped.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

PROMETHEUS = Path(__file__).resolve().parents[2] / "infra" / "prometheus"
ALERTS = PROMETHEUS / "alerts.yml"
ALERT_TESTS = PROMETHEUS / "alerts.test.yml"


def promtool(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    assert tool, "promtool not found: run scripts/system-deps.sh test (Debian package prometheus)"
    return subprocess.run(
        [tool, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=120
    )


def alert_names() -> set[str]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return {rule["alert"] for group in groups for rule in group["rules"]}


def cases() -> list[dict[str, Any]]:
    tests = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    return [case for test in tests for case in test.get("alert_rule_test", [])]


def test_rules_and_config_pass_promtool_checks(tmp_path: Path) -> None:
    checked = promtool("check", "rules", ALERTS.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # the config names the rules where compose mounts them; check it against this copy
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    config["rule_files"] = [str(ALERTS)]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    checked = promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_alert_fires_when_it_should_and_only_then() -> None:
    result = promtool("test", "rules", ALERT_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_silent_case() -> None:
    fires = {c["alertname"] for c in cases() if c.get("exp_alerts")}
    silent = {c["alertname"] for c in cases() if not c.get("exp_alerts")}
    assert sorted(alert_names() - fires) == [], "alerts never shown firing"
    assert sorted(alert_names() - silent) == [], "alerts never shown staying silent"
    assert (fires | silent) <= alert_names(), "a case names an alert that does not exist"
