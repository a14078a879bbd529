"""A real Prometheus (Debian's ``prometheus``) scrapes the running embedded stack while a
short workload runs; then every dashboard panel query must return data and every alert
rule must evaluate, through Prometheus' own HTTP API and rule manager.

The workload touches every path the dashboards draw: uploads (images, a duplicate, a
poison file, a voice note), typed searches, a voice search, the lag exporter.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from harness import RunningStack, free_port
from helpers import api, store_of, unique_png, wait_searchable
from monitoring import ALERTS_FILE, all_rules, dashboards, grafana_to_promql, panels
from speech_clips import speak

from glimpse.stack.ports import scrape_targets

pytestmark = pytest.mark.integration

SCRAPE_INTERVAL = "1s"
# Grafana's $__rate_interval: long enough to span the whole workload at 1 s scrapes.
RATE_INTERVAL = "2m"


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, promql: str) -> dict[str, Any]:
        """The ``data`` of an instant query at now; fails the test on an error status."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=30)
        body: dict[str, Any] = response.json()
        assert response.status_code == 200 and body["status"] == "success", (promql, body)
        data: dict[str, Any] = body["data"]
        return data

    def series(self, promql: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.query(promql)["result"]
        return result

    def wait_for(self, promql: str, what: str, timeout_s: float = 120) -> None:
        """Until ``promql`` has a result (Prometheus has scraped what it selects)."""
        deadline = time.monotonic() + timeout_s
        while not self.series(promql):
            assert time.monotonic() < deadline, f"Prometheus never saw {what}: {promql}"
            time.sleep(1)


@pytest.fixture
def prometheus(stack: RunningStack, tmp_path: Path) -> Iterator[Prometheus]:
    binary = shutil.which("prometheus")
    assert binary, "prometheus not found: run scripts/system-deps.sh test (Debian prometheus)"
    rules = tmp_path / "alerts.yml"
    shutil.copy(ALERTS_FILE, rules)
    config = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "rule_files": [str(rules)],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": targets}]}
            for job, targets in scrape_targets(stack.settings).items()
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (tmp_path / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.console.templates=/nonexistent",
            "--web.console.libraries=/nonexistent",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (tmp_path / "prometheus.log").read_text()
            try:
                if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "Prometheus did not get ready"
            time.sleep(0.2)
        yield Prometheus(url)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def run_workload(stack: RunningStack, tmp_path: Path) -> None:
    """Uploads, a duplicate, a poison file, a voice note, searches and a voice search."""
    store = store_of(stack.settings)
    stamp = time.time_ns()
    images = [f"prom/{stamp}-{i}.png" for i in range(3)]
    for i, key in enumerate(images):
        store.put(key, unique_png(stamp % 10_000 + i), "image/png")
    note = f"prom/{stamp}-note.wav"
    store.put(note, speak("a red bicycle", tmp_path / "note.wav").read_bytes(), "audio/wav")
    wait_searchable(stack, [*images, note])
    # after the original is in: the same bytes under another key are the duplicate
    store.put(f"prom/{stamp}-copy.png", unique_png(stamp % 10_000), "image/png")
    # a poison file: says it is a JPEG, is not one (ingest rejects it with a reason)
    store.put(f"prom/{stamp}-poison.jpg", b"MZ\x90\x00 not an image at all", "image/jpeg")
    base = api(stack)
    for q in ("a red bicycle", "a photo", "zzzz nothing"):
        assert httpx.get(f"{base}/v1/search", params={"q": q}, timeout=30).status_code == 200
    voice = httpx.post(
        f"{base}/v1/search/voice",
        content=speak("bicycle", tmp_path / "query.wav").read_bytes(),
        headers={"Content-Type": "audio/wav"},
        timeout=60,
    )
    assert voice.status_code in (200, 202), voice.text


def test_every_panel_returns_data_and_every_rule_evaluates(
    stack: RunningStack, prometheus: Prometheus, tmp_path: Path
) -> None:
    for job in scrape_targets(stack.settings):
        prometheus.wait_for(f'up{{job="{job}"}} == 1', f"{job} up")
    run_workload(stack, tmp_path)
    # What the workload created is scraped, twice (a rate needs two samples): series that
    # appear on their first event (a duplicate, a rejection, the first voice search).
    for selector, what in [
        ('glimpse_upload_to_searchable_seconds_count{kind="audio"}', "the voice note"),
        ('glimpse_http_requests_total{route="/v1/search/voice"}', "the voice search"),
        ("glimpse_ingest_rejections_total", "the poison file"),
        ("glimpse_ingest_duplicates_total", "the duplicate"),
    ]:
        prometheus.wait_for(f"{selector} > 0", what)
        prometheus.wait_for(f"count_over_time({selector}[{RATE_INTERVAL}]) >= 2", what)

    empty = []
    for file, board in dashboards().items():
        for panel in panels(board):
            for target in panel["targets"]:
                promql = grafana_to_promql(target["expr"], RATE_INTERVAL)
                if not prometheus.series(promql):
                    empty.append(f"{file} / {panel['title']} / {target['refId']}: {promql}")
    assert not empty, "panels without data:\n" + "\n".join(empty)

    for rule in all_rules():
        prometheus.query(rule["expr"])  # fails on an evaluation error
    evaluated = wait_for_rule_evaluation(prometheus, {rule["alert"] for rule in all_rules()})
    broken = {name: error for name, error in evaluated.items() if error}
    assert not broken, broken


def wait_for_rule_evaluation(
    prometheus: Prometheus, names: set[str], timeout_s: float = 30
) -> dict[str, str]:
    """Alert name -> lastError of Prometheus' own rule manager, once it evaluated them all."""
    deadline = time.monotonic() + timeout_s
    while True:
        groups = httpx.get(f"{prometheus.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
        rules = {r["name"]: r for g in groups for r in g["rules"] if r["type"] == "alerting"}
        if set(rules) == names and all(r["health"] != "unknown" for r in rules.values()):
            return {name: r.get("lastError", "") for name, r in rules.items()}
        assert time.monotonic() < deadline, f"rules not all evaluated: {sorted(rules)}"
        time.sleep(0.5)
