"""Prometheus metrics, named with units. Each process builds its own registry in main()."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

# up to hours: one transcribe batch is one voice note, up to limits.max_audio_seconds (4 h)
BATCH_SECONDS_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
    120, 300, 600, 1200, 1800, 3600, 7200, 14400,
)  # fmt: skip
# upload -> searchable: seconds on a quiet stack, minutes to hours behind a backlog
E2E_SECONDS_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600)


def service_registry() -> CollectorRegistry:
    """A registry with the process's memory, CPU, open files and start time
    (``process_*``; restarts show as start-time changes) and the Python version."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


@dataclass
class WorkerMetrics:
    """What the shared runtime records for every service (label ``service``)."""

    registry: CollectorRegistry = field(default_factory=service_registry)

    def __post_init__(self) -> None:
        r = self.registry
        self.messages = Counter(
            "glimpse_worker_messages",
            "Messages finished, by outcome",
            ["service", "outcome"],
            registry=r,
        )
        self.batch_seconds = Histogram(
            "glimpse_worker_batch_seconds",
            "Time to process and commit one batch",
            ["service"],
            buckets=BATCH_SECONDS_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "glimpse_worker_batch_size",
            "Messages per batch",
            ["service"],
            buckets=BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self.transient_errors = Counter(
            "glimpse_worker_transient_errors",
            "Infrastructure errors that were retried",
            ["service", "error"],
            registry=r,
        )
        self.record_failure_errors = Counter(
            "glimpse_worker_record_failure_errors",
            "Dead letters sent without being recorded, because recording them failed",
            ["service", "error"],
            registry=r,
        )
        self.dead_letters = Counter(
            "glimpse_worker_dead_letters",
            "Messages sent to the DLQ, by reason (processing_error, crashed_worker, ...)",
            ["service", "reason"],
            registry=r,
        )
        self.crashed_items = Counter(
            "glimpse_worker_crashed_items",
            "Items dead-lettered because the worker died on them worker.max_crashes times",
            ["service"],
            registry=r,
        )
        self.retries = Counter(
            "glimpse_worker_retries", "Batch or item retries", ["service"], registry=r
        )
        self.consumed = Counter(
            "glimpse_worker_consumed_messages",
            "Messages taken from the broker (re-deliveries count again), by topic",
            ["service", "topic"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "glimpse_consumer_lag_messages",
            "Messages on an owned partition not yet committed by the worker's group "
            "(fetch high watermark - position + the batch in hand), as of the last poll",
            ["service", "topic", "partition"],
            registry=r,
        )
        self.last_commit = Gauge(
            "glimpse_worker_last_commit_timestamp_seconds",
            "Unix time of the last commit; set when the worker starts consuming",
            ["service"],
            registry=r,
        )
        self.last_progress = Gauge(
            "glimpse_worker_last_progress_timestamp_seconds",
            "Unix time the worker last committed or had nothing to do (no lag); set at start",
            ["service"],
            registry=r,
        )
        self.max_batch_seconds = Gauge(
            "glimpse_worker_max_batch_seconds",
            "The longest one batch may legitimately take (the service's declaration)",
            ["service"],
            registry=r,
        )
        self.inflight = Gauge(
            "glimpse_worker_inflight_messages",
            "Messages consumed but not yet committed",
            ["service"],
            registry=r,
        )


@dataclass
class IngestMetrics:
    registry: CollectorRegistry

    def __post_init__(self) -> None:
        r = self.registry
        self.rejections = Counter(
            "glimpse_ingest_rejections", "Rejected uploads, by reason", ["reason"], registry=r
        )
        self.bytes = Counter("glimpse_ingest_bytes", "Bytes read from the bucket", registry=r)
        self.accepted = Counter(
            "glimpse_ingest_accepted", "Accepted uploads, by kind", ["kind"], registry=r
        )
        self.duplicates = Counter(
            "glimpse_ingest_duplicates", "Uploads whose content was already stored", registry=r
        )


@dataclass
class EmbedMetrics:
    registry: CollectorRegistry

    def __post_init__(self) -> None:
        self.upload_to_searchable = Histogram(
            "glimpse_upload_to_searchable_seconds",
            "From the upload (media row created by ingest) to its text vector stored, "
            "by kind; observed once per item, re-deliveries skipped",
            ["kind"],
            buckets=E2E_SECONDS_BUCKETS,
            registry=self.registry,
        )


# one call: a query embedding (milliseconds) to a voice note's windows (an hour or more)
INFERENCE_SECONDS_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
    300, 1200, 3600, 14400,
)  # fmt: skip


@dataclass
class ModelMetrics:
    """Model loads and inference calls of one service (a ``ModelObserver``: models call
    it, so a GPU pod that fell back to the CPU shows as ``device="cpu"``)."""

    registry: CollectorRegistry
    service: str

    def __post_init__(self) -> None:
        r = self.registry
        self.info = Gauge(
            "glimpse_model_info",
            "1 per loaded model: its revision, the device it runs on and the one asked for",
            ["service", "model", "revision", "device", "requested_device"],
            registry=r,
        )
        self.load_seconds = Gauge(
            "glimpse_model_load_seconds",
            "Seconds the model's load() took (weights read, moved to the device)",
            ["service", "model"],
            registry=r,
        )
        self.inference_seconds = Histogram(
            "glimpse_model_inference_seconds",
            "One inference call (a batch of images or texts, one audio clip), lock wait excluded",
            ["service", "model"],
            buckets=INFERENCE_SECONDS_BUCKETS,
            registry=r,
        )
        self.inference_items = Counter(
            "glimpse_model_inference_items",
            "Inputs given to inference calls (images, texts, clips)",
            ["service", "model"],
            registry=r,
        )

    def loaded(
        self, model_id: str, revision: str, device: str, requested_device: str, seconds: float
    ) -> None:
        self.info.labels(self.service, model_id, revision, device, requested_device).set(1)
        self.load_seconds.labels(self.service, model_id).set(seconds)
        # the series exist from the load on, so rates read 0 rather than nothing
        self.inference_seconds.labels(self.service, model_id)
        self.inference_items.labels(self.service, model_id)

    def ran(self, model_id: str, seconds: float, items: int) -> None:
        self.inference_seconds.labels(self.service, model_id).observe(seconds)
        self.inference_items.labels(self.service, model_id).inc(items)
