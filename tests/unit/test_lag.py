"""A worker's lag gauge (glimpse/lag.py) against a real in-memory tansu broker, checked
against the broker's own answer (glimpse/group_lag.py) for the same group."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import bus_helpers
import pytest
from test_runtime import wait_until

from glimpse.bus import InboundMessage, ensure_topics, make_consumer, make_producer
from glimpse.config import KafkaSettings, WorkerSettings
from glimpse.group_lag import read_group_lag
from glimpse.metrics import WorkerMetrics
from glimpse.runtime import DeadLetter, Done, ItemResult, ServiceSpec, Worker

TOPIC = "lag.in"
SPEC = ServiceSpec("lagtest", (TOPIC,))


@dataclass
class GatedHandler:
    """Holds every batch until ``release`` is set, like a model call that hangs."""

    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    handled: list[bytes] = field(default_factory=list)

    def handle(self, batch: Sequence[InboundMessage]) -> list[ItemResult]:
        self.entered.set()
        assert self.release.wait(60)
        self.handled.extend(m.value for m in batch)
        return [Done() for _ in batch]

    def record_failure(self, message: InboundMessage, letter: DeadLetter) -> None:
        return

    def close(self) -> None:
        return


@pytest.fixture
def kafka(memory_broker: str) -> KafkaSettings:
    settings = KafkaSettings(bootstrap=memory_broker, partitions=1)
    ensure_topics(settings, [TOPIC, settings.dlq_topic])
    return settings


@pytest.fixture
def run_worker(kafka: KafkaSettings) -> Iterator[Callable[[GatedHandler, int], Worker]]:
    started: list[tuple[Worker, threading.Thread, GatedHandler]] = []

    def start(handler: GatedHandler, max_batch: int) -> Worker:
        worker = Worker(
            SPEC,
            handler,
            make_consumer(kafka, SPEC.group, SPEC.input_topics),
            make_producer(kafka),
            kafka,
            WorkerSettings(max_batch=max_batch, max_wait_ms=100),
            WorkerMetrics(),
        )
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        started.append((worker, thread, handler))
        return worker

    yield start
    for worker, thread, handler in started:
        handler.release.set()
        worker.request_stop()
        thread.join(timeout=30)
        worker.consumer.close(autocommit=False)
        worker.producer.close()


def sample(worker: Worker, name: str, **labels: str) -> float | None:
    return worker.metrics.registry.get_sample_value(name, {"service": SPEC.name, **labels})


def lag(worker: Worker) -> float | None:
    return sample(worker, "glimpse_consumer_lag_messages", topic=TOPIC, partition="0")


def group_lag(kafka: KafkaSettings) -> int:
    assert kafka.bootstrap
    (partition,) = read_group_lag(kafka.bootstrap, {SPEC.group: [TOPIC]})
    return partition.lag


def test_a_worker_stuck_on_its_first_batch_shows_the_batch_as_lag(
    kafka: KafkaSettings, run_worker: Callable[[GatedHandler, int], Worker]
) -> None:
    handler = GatedHandler()
    bus_helpers.produce(kafka, TOPIC, [b"a", b"b", b"c"])
    worker = run_worker(handler, 10)
    assert handler.entered.wait(60)
    wait_until(lambda: lag(worker) == 3)

    # the broker agrees: nothing is committed
    assert group_lag(kafka) == 3
    # "no commit since" is defined although the worker never committed
    started = sample(worker, "glimpse_worker_last_commit_timestamp_seconds")
    assert started is not None
    assert sample(worker, "glimpse_worker_last_progress_timestamp_seconds") == started
    assert sample(worker, "glimpse_worker_max_batch_seconds") == SPEC.max_batch_seconds

    handler.release.set()
    wait_until(lambda: lag(worker) == 0)
    assert group_lag(kafka) == 0
    committed = sample(worker, "glimpse_worker_last_commit_timestamp_seconds")
    assert committed is not None and committed > started
    progress = sample(worker, "glimpse_worker_last_progress_timestamp_seconds")
    assert progress is not None and progress >= committed
    assert sample(worker, "glimpse_worker_consumed_messages_total", topic=TOPIC) == 3
    # what `glimpse status` reads from the worker's /status
    wait_until(lambda: worker.activity.snapshot()["lag"] == 0)
    assert worker.activity.snapshot()["messages_per_minute"] == 3


def test_lag_counts_what_the_worker_has_not_taken_yet(
    kafka: KafkaSettings, run_worker: Callable[[GatedHandler, int], Worker]
) -> None:
    handler = GatedHandler()
    bus_helpers.produce(kafka, TOPIC, [f"m{i}".encode() for i in range(5)])
    worker = run_worker(handler, 1)  # one in hand, four waiting on the broker
    assert handler.entered.wait(60)
    wait_until(lambda: lag(worker) == 5)
    assert group_lag(kafka) == 5

    bus_helpers.produce(kafka, TOPIC, [b"more", b"and more"])
    handler.release.set()
    wait_until(lambda: len(handler.handled) == 7 and lag(worker) == 0)
    assert group_lag(kafka) == 0
