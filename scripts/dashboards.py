"""Writes glimpse's Grafana dashboards (infra/grafana/dashboards/*.json) from one description.

    python scripts/dashboards.py          # rewrite the files
    python scripts/dashboards.py --check  # exit 1 if a file differs from what this writes

Panels are written as code so that four dashboards share one look, ids and grid positions
are computed, and the tests can read every query. tests/unit/test_deploy_manifests.py checks
that the files are this script's output, that every query names only exported metrics and
that every glimpse_* metric is shown; tests/integration/test_prometheus_stack.py evaluates
every query against a real Prometheus scraping the embedded stack.

Lazily created series (retries, transient errors, dead letters by reason) are shown with an
``or`` fallback to a series every worker has from its start, so a quiet pipeline draws a
zero line instead of "No data".
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "infra" / "grafana" / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
RATE = "$__rate_interval"
SERVICE = 'service=~"$service"'
REAL_TRAFFIC = 'route!~"/metrics|/healthz|/readyz"'
# a zero per running worker: the fallback for series that appear on their first event
ZERO_PER_SERVICE = f"sum by (service) (glimpse_worker_max_batch_seconds{{{SERVICE}}}) * 0"


@dataclass(frozen=True)
class Target:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    targets: list[Target]
    unit: str = "short"
    kind: str = "timeseries"  # timeseries | stat | table
    width: int = 12
    height: int = 8
    stacked: bool = False


@dataclass(frozen=True)
class Row:
    title: str
    panels: list[Panel]


@dataclass(frozen=True)
class Dashboard:
    file: str
    uid: str
    title: str
    description: str
    rows: list[Row]
    service_variable: bool = True
    links: list[str] = field(default_factory=list)


def per_service(metric: str) -> str:
    """The per-second rate of ``metric`` per service, for the services picked."""
    return f"sum by (service) (rate({metric}{{{SERVICE}}}[{RATE}]))"


def ts(title: str, description: str, *targets: Target, **kw: Any) -> Panel:
    return Panel(title, description, list(targets), **kw)


def stat(title: str, description: str, expr: str, unit: str = "short") -> Panel:
    return Panel(title, description, [Target(expr)], unit=unit, kind="stat", width=6, height=4)


def quantiles(
    metric: str, by: str, selector: str = "", qs: tuple[float, ...] = (0.5, 0.99)
) -> list[Target]:
    inner = f"{metric}_bucket{{{selector}}}" if selector else f"{metric}_bucket"
    return [
        Target(
            f"histogram_quantile({q}, sum by (le, {by}) (rate({inner}[{RATE}])))",
            f"p{round(q * 100)} " + " ".join(f"{{{{{label.strip()}}}}}" for label in by.split(",")),
        )
        for q in qs
    ]


PIPELINE = Dashboard(
    "pipeline.json",
    "glimpse-pipeline",
    "glimpse — pipeline",
    "Throughput per stage, consumer lag, upload-to-searchable latency, failures and dead "
    "letters by reason.",
    [
        Row(
            "Overview",
            [
                stat(
                    "Processed messages/s",
                    "Messages finished with outcome ok, all workers.",
                    f'sum(rate(glimpse_worker_messages_total{{outcome="ok"}}[{RATE}]))',
                    "ops",
                ),
                stat(
                    "Backlog (all groups)",
                    "Messages not yet committed by their consumer group, from the lag exporter "
                    "(the broker's view: counts groups with no running worker too).",
                    "sum(glimpse_consumer_group_lag_messages)",
                ),
                stat(
                    "Images searchable p99 (30 min)",
                    "Upload (ingest's first sight) to the first text vector stored.",
                    "histogram_quantile(0.99, sum by (le) (rate("
                    'glimpse_upload_to_searchable_seconds_bucket{kind="image"}[30m])))',
                    "s",
                ),
                stat(
                    "Dead letters (last hour)",
                    "Messages sent to glimpse.dlq after retries.",
                    'sum(increase(glimpse_worker_messages_total{outcome="dlq"}[1h]))',
                ),
            ],
        ),
        Row(
            "Throughput per stage",
            [
                ts(
                    "Finished messages by service and outcome",
                    "Messages per second, split by outcome (ok, rejected, dlq, skipped).",
                    Target(
                        "sum by (service, outcome) (rate(glimpse_worker_messages_total"
                        f"{{{SERVICE}}}[{RATE}]))",
                        "{{service}} {{outcome}}",
                    ),
                    unit="ops",
                    stacked=True,
                ),
                ts(
                    "Messages in and taken, by topic",
                    "In: the rate of the topic's end offset (lag exporter). Taken: messages the "
                    "workers consumed (re-deliveries count again).",
                    Target(
                        f"sum by (topic) (rate(glimpse_topic_end_offset[{RATE}]))", "in {{topic}}"
                    ),
                    Target(
                        "sum by (topic) (rate(glimpse_worker_consumed_messages_total"
                        f"{{{SERVICE}}}[{RATE}]))",
                        "taken {{topic}}",
                    ),
                    unit="ops",
                ),
                ts(
                    "Batch latency p50 / p99",
                    "Time to process and commit one batch (transcribe: one voice note).",
                    *quantiles("glimpse_worker_batch_seconds", "service", SERVICE),
                    unit="s",
                ),
                ts(
                    "Batch size and batches/s",
                    "Mean messages per batch, and batches per second.",
                    Target(
                        f"{per_service('glimpse_worker_batch_size_sum')} "
                        f"/ {per_service('glimpse_worker_batch_size_count')}",
                        "size {{service}}",
                    ),
                    Target(
                        per_service("glimpse_worker_batch_seconds_count"),
                        "batches/s {{service}}",
                    ),
                ),
            ],
        ),
        Row(
            "Lag",
            [
                ts(
                    "Consumer lag by group (broker)",
                    "End of each partition (Fetch high watermark) minus the group's committed "
                    "offset, summed per group; backfill groups are glimpse-<stage>-backfill.",
                    Target("sum by (group) (glimpse_consumer_group_lag_messages)", "{{group}}"),
                ),
                ts(
                    "Lag of owned partitions, by worker",
                    "What each worker has not committed on the partitions it owns, including "
                    "the batch in hand.",
                    Target(
                        f"sum by (service, instance) (glimpse_consumer_lag_messages{{{SERVICE}}})",
                        "{{service}} {{instance}}",
                    ),
                ),
                ts(
                    "Seconds without progress vs batch bound",
                    "Since the last commit or caught-up poll, against the longest batch the "
                    "worker declares: the stalled-worker alert fires when lag > 0 and the "
                    "first passes the second.",
                    Target(
                        "time() - max by (service, instance) "
                        f"(glimpse_worker_last_progress_timestamp_seconds{{{SERVICE}}})",
                        "idle {{service}} {{instance}}",
                    ),
                    Target(
                        f"max by (service) (glimpse_worker_max_batch_seconds{{{SERVICE}}})",
                        "bound {{service}}",
                    ),
                    unit="s",
                ),
                ts(
                    "Seconds since last commit, in-flight messages",
                    "Commit age per worker, and messages consumed but not committed.",
                    Target(
                        "time() - max by (service) "
                        f"(glimpse_worker_last_commit_timestamp_seconds{{{SERVICE}}})",
                        "since commit {{service}}",
                    ),
                    Target(
                        f"sum by (service) (glimpse_worker_inflight_messages{{{SERVICE}}})",
                        "in flight {{service}}",
                    ),
                ),
            ],
        ),
        Row(
            "Upload to searchable",
            [
                ts(
                    "Upload to searchable p50 / p99",
                    "From ingest's first sight of the upload to its first text vector, by kind "
                    "(audio includes the transcription).",
                    *quantiles("glimpse_upload_to_searchable_seconds", "kind"),
                    unit="s",
                ),
                ts(
                    "Items made searchable per second",
                    "Uploads whose first text vector was stored, by kind.",
                    Target(
                        f"sum by (kind) (rate(glimpse_upload_to_searchable_seconds_count[{RATE}]))",
                        "{{kind}}",
                    ),
                    unit="ops",
                ),
            ],
        ),
        Row(
            "Failures",
            [
                ts(
                    "Dead letters by reason",
                    "Messages sent to glimpse.dlq by service and reason (processing_error, "
                    "crashed_worker, ...); a zero line per service while there are none.",
                    Target(
                        "sum by (service, reason) (rate(glimpse_worker_dead_letters_total"
                        f"{{{SERVICE}}}[{RATE}])) or sum by (service) (rate("
                        f'glimpse_worker_messages_total{{outcome="dlq", {SERVICE}}}[{RATE}]))',
                        "{{service}} {{reason}}",
                    ),
                    unit="ops",
                ),
                ts(
                    "Crashed items, unrecorded dead letters",
                    "Items dead-lettered because the worker died on them worker.max_crashes "
                    "times; dead letters whose recording in Postgres failed.",
                    Target(
                        "sum by (service) (rate(glimpse_worker_crashed_items_total"
                        f"{{{SERVICE}}}[{RATE}])) or {ZERO_PER_SERVICE}",
                        "crashed {{service}}",
                    ),
                    Target(
                        "sum by (service, error) (rate(glimpse_worker_record_failure_errors_total"
                        f"{{{SERVICE}}}[{RATE}])) or {ZERO_PER_SERVICE}",
                        "unrecorded {{service}} {{error}}",
                    ),
                    unit="ops",
                ),
                ts(
                    "Transient errors and retries",
                    "Infrastructure errors retried with backoff (never data loss), and item or "
                    "batch retries.",
                    Target(
                        "sum by (service, error) (rate(glimpse_worker_transient_errors_total"
                        f"{{{SERVICE}}}[{RATE}])) or {ZERO_PER_SERVICE}",
                        "{{service}} {{error}}",
                    ),
                    Target(
                        f"{per_service('glimpse_worker_retries_total')} or {ZERO_PER_SERVICE}",
                        "retries {{service}}",
                    ),
                    unit="ops",
                ),
                ts(
                    "Ingest rejections by reason",
                    "Uploads turned away by ingest (not an image, too big, undecodable, ...).",
                    Target(
                        f"sum by (reason) (rate(glimpse_ingest_rejections_total[{RATE}]))",
                        "{{reason}}",
                    ),
                    unit="ops",
                ),
                ts(
                    "Ingest: accepted by kind, duplicates, bytes read",
                    "Accepted uploads, uploads whose content was already stored, and the "
                    "bytes ingest read from the bucket.",
                    Target(
                        f"sum by (kind) (rate(glimpse_ingest_accepted_total[{RATE}]))", "{{kind}}"
                    ),
                    Target(f"sum(rate(glimpse_ingest_duplicates_total[{RATE}]))", "duplicates"),
                    Target(f"sum(rate(glimpse_ingest_bytes_total[{RATE}]))", "bytes/s"),
                    width=24,
                ),
            ],
        ),
    ],
)

MODELS = Dashboard(
    "models.json",
    "glimpse-models",
    "glimpse — models",
    "Which model runs where (revision, device), load time, inference time and throughput.",
    [
        Row(
            "Loaded models",
            [
                stat(
                    "Models on the CPU that asked for a GPU",
                    "Loaded models whose settings asked for cuda but that run on the CPU: a "
                    "GPU pod without a usable GPU (driver, device plugin, CUDA image).",
                    'count(glimpse_model_info{requested_device="cuda", device!="cuda"}) '
                    "or vector(0)",
                ),
                stat(
                    "Models loaded",
                    "Loaded models across all services.",
                    "count(glimpse_model_info)",
                ),
                Panel(
                    "Model info",
                    "One row per loaded model: service, model id, weights revision, the device "
                    "it runs on and the one its settings asked for.",
                    [
                        Target(
                            "max by (service, model, revision, device, requested_device) "
                            "(glimpse_model_info)"
                        )
                    ],
                    kind="table",
                    width=12,
                    height=4,
                ),
            ],
        ),
        Row(
            "Inference",
            [
                ts(
                    "Inference call p50 / p99",
                    "One call: a batch of images or texts, or one audio clip; the wait for the "
                    "model's lock is not included.",
                    *quantiles("glimpse_model_inference_seconds", "service, model", SERVICE),
                    unit="s",
                ),
                ts(
                    "Items per second, by model",
                    "Images, texts or clips through each model.",
                    Target(
                        "sum by (service, model) (rate(glimpse_model_inference_items_total"
                        f"{{{SERVICE}}}[{RATE}]))",
                        "{{service}} {{model}}",
                    ),
                    unit="ops",
                ),
                ts(
                    "Seconds per item and items per call",
                    "Mean inference seconds per input, and mean inputs per call (the batch the "
                    "model got).",
                    Target(
                        "sum by (service, model) (rate(glimpse_model_inference_seconds_sum"
                        f"{{{SERVICE}}}[{RATE}])) / sum by (service, model) (rate("
                        f"glimpse_model_inference_items_total{{{SERVICE}}}[{RATE}]))",
                        "s/item {{service}} {{model}}",
                    ),
                    Target(
                        "sum by (service, model) (rate(glimpse_model_inference_items_total"
                        f"{{{SERVICE}}}[{RATE}])) / sum by (service, model) (rate("
                        f"glimpse_model_inference_seconds_count{{{SERVICE}}}[{RATE}]))",
                        "items/call {{service}} {{model}}",
                    ),
                ),
                ts(
                    "Model load seconds",
                    "How long each model's load took at the process's start (startup probes "
                    "must allow for it).",
                    Target(
                        f"max by (service, model) (glimpse_model_load_seconds{{{SERVICE}}})",
                        "{{service}} {{model}}",
                    ),
                    unit="s",
                ),
            ],
        ),
    ],
)

API = Dashboard(
    "api.json",
    "glimpse-api",
    "glimpse — API and search",
    "search_api traffic, errors and latency; where a search's time goes.",
    [
        Row(
            "Requests",
            [
                ts(
                    "Requests by route and status",
                    "Requests per second.",
                    Target(
                        f"sum by (route, status) (rate(glimpse_http_requests_total[{RATE}]))",
                        "{{route}} {{status}}",
                    ),
                    unit="reqps",
                ),
                ts(
                    "5xx ratio of real traffic",
                    "Probes and scrapes left out, crashes included (counted as the 500 the "
                    "client gets).",
                    Target(
                        "(sum(rate(glimpse_http_requests_total"
                        f'{{status=~"5..", {REAL_TRAFFIC}}}[{RATE}])) or vector(0)) / '
                        f"sum(rate(glimpse_http_requests_total{{{REAL_TRAFFIC}}}[{RATE}]))",
                        "5xx",
                    ),
                    unit="percentunit",
                ),
                ts(
                    "Latency p50 / p99 by route",
                    "Request latency of real traffic.",
                    *quantiles("glimpse_http_request_duration_seconds", "route", REAL_TRAFFIC),
                    unit="s",
                ),
                ts(
                    "Voice search latency p50 / p90, late transcripts",
                    "POST /v1/search/voice waits up to voice.wait_s for transcribe-queries; "
                    "202: no transcript in time.",
                    *quantiles(
                        "glimpse_http_request_duration_seconds",
                        "method",
                        'route="/v1/search/voice", method="POST"',
                        (0.5, 0.9),
                    ),
                    Target(
                        '(sum(rate(glimpse_http_requests_total{route="/v1/search/voice", '
                        f'method="POST", status="202"}}[{RATE}])) or vector(0)) / sum(rate('
                        'glimpse_http_requests_total{route="/v1/search/voice", method="POST"}'
                        f"[{RATE}]))",
                        "share answered 202",
                    ),
                    unit="s",
                ),
            ],
        ),
        Row(
            "Search phases",
            [
                ts(
                    "Mean seconds per search, by phase",
                    "embed: the query vector; vector_sql: HNSW; keyword_sql: full text; "
                    "background_sql: the relevance sample; fuse: RRF and judging; hits_sql: "
                    "the page's rows.",
                    Target(
                        f"sum by (phase) (rate(glimpse_search_phase_seconds_sum[{RATE}])) / "
                        f"sum by (phase) (rate(glimpse_search_phase_seconds_count[{RATE}]))",
                        "{{phase}}",
                    ),
                    unit="s",
                    stacked=True,
                ),
                ts(
                    "Search phase p99",
                    "The slow tail of each phase.",
                    *quantiles("glimpse_search_phase_seconds", "phase", qs=(0.99,)),
                    unit="s",
                ),
            ],
        ),
    ],
    service_variable=False,
)

INFRASTRUCTURE = Dashboard(
    "infrastructure.json",
    "glimpse-infrastructure",
    "glimpse — infrastructure",
    "Scrape targets, process memory, CPU and restarts, the lag exporter and the topics.",
    [
        Row(
            "Targets and processes",
            [
                ts(
                    "Targets up",
                    "1 while Prometheus scrapes the target (compose: job glimpse-*; "
                    "Kubernetes: pods labelled app.kubernetes.io/name=glimpse).",
                    Target(
                        'max by (job, instance) (up{job=~"glimpse-.*"}) '
                        'or max by (job, instance) (up{app_kubernetes_io_name="glimpse"})',
                        "{{job}} {{instance}}",
                    ),
                ),
                ts(
                    "Restarts (last hour)",
                    "Changes of the process start time: each is a restart.",
                    Target(
                        'sum by (job) (changes(process_start_time_seconds{job=~"glimpse-.*"}[1h]))',
                        "{{job}}",
                    ),
                ),
                ts(
                    "Resident memory",
                    "Per process.",
                    Target(
                        'sum by (job, instance) (process_resident_memory_bytes{job=~"glimpse-.*"})',
                        "{{job}} {{instance}}",
                    ),
                    unit="bytes",
                ),
                ts(
                    "CPU",
                    "Cores used per process.",
                    Target(
                        'sum by (job, instance) (rate(process_cpu_seconds_total{job=~"glimpse-.*"}'
                        f"[{RATE}]))",
                        "{{job}} {{instance}}",
                    ),
                ),
            ],
        ),
        Row(
            "Broker",
            [
                ts(
                    "Lag exporter",
                    "1 while the exporter reads the broker; seconds one reading takes.",
                    Target("max(glimpse_lag_exporter_up)", "up"),
                    Target("max(glimpse_lag_exporter_scrape_seconds)", "scrape seconds"),
                ),
                ts(
                    "Topic end offsets",
                    "Messages ever written per topic (Fetch high watermarks).",
                    Target("sum by (topic) (glimpse_topic_end_offset)", "{{topic}}"),
                ),
            ],
        ),
    ],
    service_variable=False,
)

DASHBOARDS = [PIPELINE, MODELS, API, INFRASTRUCTURE]


def service_variable() -> dict[str, Any]:
    query = "label_values(glimpse_worker_messages_total, service)"
    return {
        "name": "service",
        "label": "Service",
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": "service"},
        "definition": query,
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
        "hide": 0,
        "options": [],
        "regex": "",
        "skipUrlSync": False,
    }


def panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    targets = [
        {
            "datasource": DATASOURCE,
            "refId": chr(ord("A") + i),
            "expr": t.expr,
            "legendFormat": t.legend,
            "range": panel.kind != "table",
            "instant": panel.kind == "table",
            **({"format": "table"} if panel.kind == "table" else {}),
        }
        for i, t in enumerate(panel.targets)
    ]
    defaults: dict[str, Any] = {"unit": panel.unit}
    options: dict[str, Any]
    transformations: list[dict[str, Any]] = []
    if panel.kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 10,
            "showPoints": "never",
            "stacking": {"mode": "normal" if panel.stacked else "none", "group": "A"},
        }
        options = {
            "legend": {"displayMode": "table", "placement": "right", "showLegend": True,
                       "calcs": ["lastNotNull", "max"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }  # fmt: skip
    elif panel.kind == "stat":
        defaults["color"] = {"mode": "thresholds"}
        defaults["thresholds"] = {"mode": "absolute", "steps": [{"color": "blue", "value": None}]}
        options = {
            "colorMode": "background",
            "graphMode": "area",
            "justifyMode": "auto",
            "textMode": "auto",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        }
    else:
        options = {"showHeader": True}
        transformations = [
            {"id": "organize", "options": {"excludeByName": {"Time": True, "Value": True}}}
        ]
    return {
        "type": panel.kind,
        "id": panel_id,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options,
        "targets": targets,
        **({"transformations": transformations} if transformations else {}),
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
    }


def dashboard_json(dashboard: Dashboard) -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    y = 0
    for row in dashboard.rows:
        panels.append(
            {"type": "row", "id": len(panels) + 1, "title": row.title, "collapsed": False,
             "panels": [], "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}}
        )  # fmt: skip
        y += 1
        x, line_height = 0, 0
        for panel in row.panels:
            if x + panel.width > 24:
                x, y, line_height = 0, y + line_height, 0
            panels.append(panel_json(panel, len(panels) + 1, x, y))
            x += panel.width
            line_height = max(line_height, panel.height)
        y += line_height
    others = [d for d in DASHBOARDS if d is not dashboard]
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": ["glimpse"],
        "timezone": "browser",
        "editable": False,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"},
        "timepicker": {},
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "links": [
            {"title": d.title, "type": "link", "url": f"/d/{d.uid}", "targetBlank": False}
            for d in others
        ],
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "templating": {"list": [service_variable()] if dashboard.service_variable else []},
        "panels": panels,
    }


def rendered() -> dict[str, str]:
    """File name -> the JSON text it should hold."""
    return {d.file: json.dumps(dashboard_json(d), indent=2) + "\n" for d in DASHBOARDS}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    args = parser.parse_args()
    stale = [name for name, text in rendered().items() if not (OUT / name).is_file()
             or (OUT / name).read_text() != text]  # fmt: skip
    if args.check:
        for name in stale:
            print(f"{OUT / name} is not what scripts/dashboards.py writes", file=sys.stderr)
        return 1 if stale else 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in rendered().items():
        (OUT / name).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
