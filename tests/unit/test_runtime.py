"""The shared worker runtime against a real (in-memory) tansu broker.

The handlers here are small test doubles of a service: they keep their "results"
in a list instead of Postgres, which is what the runtime sees of any service.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import bus_helpers
import pytest
from bus_helpers import read_all

from glimpse.bus import InboundMessage, OutboundMessage, ensure_topics, make_consumer, make_producer
from glimpse.config import KafkaSettings, WorkerSettings
from glimpse.errors import TransientError
from glimpse.metrics import WorkerMetrics
from glimpse.runtime import (
    AttemptLog,
    DeadLetter,
    Done,
    Failed,
    ItemResult,
    NoAttemptLog,
    ServiceSpec,
    Worker,
)

IN, OUT, BACKFILL = "test.in", "test.out", "test.backfill"


@dataclass
class RecordingHandler:
    """Uppercases values to OUT; 'poison' raises; 'bad' is marked permanently failed;
    'huge' makes an output over the broker's size limit; the first
    ``transient_failures`` calls raise an infrastructure error; ``record_error``, when
    set, is what recording a failure raises."""

    transient_failures: int = 0
    record_error: Exception | None = None
    batches: list[list[bytes]] = field(default_factory=list)
    stored: list[bytes] = field(default_factory=list)
    failures: list[DeadLetter] = field(default_factory=list)
    calls: int = 0

    def handle(self, batch: Sequence[InboundMessage]) -> list[ItemResult]:
        self.calls += 1
        if self.calls <= self.transient_failures:
            raise TransientError("database unreachable")
        if any(m.value == b"poison" for m in batch):
            raise ValueError("cannot decode poison")
        self.batches.append([m.value for m in batch])
        results: list[ItemResult] = []
        for m in batch:
            if m.value == b"bad":
                results.append(Failed(ValueError("bad input"), permanent=True))
                continue
            self.stored.append(m.value)
            value = b"x" * 2_000_000 if m.value == b"huge" else m.value.upper()
            results.append(Done([OutboundMessage(OUT, m.key, value)]))
        return results

    def record_failure(self, message: InboundMessage, letter: DeadLetter) -> None:
        if self.record_error is not None:
            raise self.record_error
        self.failures.append(letter)

    def close(self) -> None:
        return


@pytest.fixture
def kafka(memory_broker: str) -> KafkaSettings:
    settings = KafkaSettings(bootstrap=memory_broker, partitions=1)
    ensure_topics(settings, [IN, OUT, BACKFILL, settings.dlq_topic])
    return settings


def produce(kafka: KafkaSettings, values: Sequence[bytes]) -> None:
    bus_helpers.produce(kafka, IN, values)


@dataclass
class RunningWorker:
    worker: Worker
    thread: threading.Thread

    def stop(self) -> None:
        self.worker.request_stop()
        self.thread.join(timeout=30)
        self.worker.consumer.close(autocommit=False)
        if self.worker.backfill is not None:
            self.worker.backfill.close(autocommit=False)
        self.worker.producer.close()


@pytest.fixture
def start_worker(kafka: KafkaSettings) -> Iterator[Callable[..., RunningWorker]]:
    running: list[RunningWorker] = []

    def start(
        handler: RecordingHandler,
        spec: ServiceSpec | None = None,
        topics: KafkaSettings = kafka,
        attempts: AttemptLog | None = None,
        **worker: object,
    ) -> RunningWorker:
        defaults = {"max_batch": 4, "max_wait_ms": 300, "backoff_initial_s": 0.05}
        settings = WorkerSettings(**{**defaults, "backoff_max_s": 0.2, **worker})  # type: ignore[arg-type]
        spec = spec or ServiceSpec("test", (IN,))
        w = Worker(
            spec,
            handler,
            make_consumer(kafka, spec.group, spec.input_topics),
            make_producer(kafka),
            topics,
            settings,
            WorkerMetrics(),
            attempts=attempts,
            backfill=(
                make_consumer(kafka, spec.backfill_group, spec.backfill_topics)
                if spec.backfill_topics
                else None
            ),
        )
        thread = threading.Thread(target=w.run, daemon=True)
        thread.start()
        running.append(RunningWorker(w, thread))
        return running[-1]

    yield start
    for r in running:
        if r.thread.is_alive():
            r.stop()


def wait_until(condition: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_live_messages_overtake_a_backfill_already_under_way(
    kafka: KafkaSettings, start_worker: Callable[..., RunningWorker]
) -> None:
    handler = SlowHandler(seconds=0.2)  # like a model
    start_worker(handler, ServiceSpec("test", (IN,), backfill_topics=(BACKFILL,)))
    live = make_producer(kafka)  # warmed up by the first message: then sending takes ms
    live.send(IN, key=b"k", value=b"first")
    live.flush()
    wait_until(lambda: handler.stored == [b"first"])  # the worker is in its live group
    bus_helpers.produce(kafka, BACKFILL, [f"old{i}".encode() for i in range(60)])
    # the backfill is under way (its group's join alone took 23 s on tansu once)
    wait_until(lambda: len(handler.stored) >= 9, timeout_s=90)

    for value in (b"new0", b"new1", b"new2"):
        live.send(IN, key=b"k", value=value)
    live.flush()
    produced_at = len(handler.stored)
    live.close()
    wait_until(lambda: len(handler.stored) == 64)

    position = {value: i for i, value in enumerate(handler.stored)}
    arrived = max(position[b"new0"], position[b"new1"], position[b"new2"])
    # within two batches of 4 after they were produced: not behind the 50 old ones left
    assert arrived < produced_at + 2 * 4 + 3, handler.stored
    assert produced_at < 40  # (else the test proves nothing: most of the backfill was left)
    assert sorted(v for v in handler.stored if v.startswith(b"old")) == sorted(
        f"old{i}".encode() for i in range(60)
    )  # and the backfill still finishes, each once


def test_a_live_message_waits_for_one_backfill_batch_and_shares_its_own_with_none(
    kafka: KafkaSettings, start_worker: Callable[..., RunningWorker]
) -> None:
    """Between backfill batches the live input is polled long enough for a fetch to come
    back, so a live message produced during a backfill batch is in the next batch, and
    that batch holds live messages only."""
    handler = SlowHandler(seconds=0.3)
    start_worker(handler, ServiceSpec("test", (IN,), backfill_topics=(BACKFILL,)))
    live = make_producer(kafka)
    live.send(IN, key=b"k", value=b"first")
    live.flush()
    wait_until(lambda: handler.stored == [b"first"])
    bus_helpers.produce(kafka, BACKFILL, [f"old{i}".encode() for i in range(80)])
    # the backfill is under way (its group's join alone took 23 s on tansu once)
    wait_until(lambda: len(handler.batches) >= 4, timeout_s=90)

    for i in range(3):  # one at a time, each during some backfill batch
        batches_before = len(handler.batches)
        live.send(IN, key=b"k", value=f"new{i}".encode())
        live.flush()
        wait_until(lambda i=i: f"new{i}".encode() in handler.stored)  # type: ignore[misc]
        taken_in = next(n for n, b in enumerate(handler.batches) if f"new{i}".encode() in b)
        # the batch under way when it was produced, then its own (a fetch under way may
        # end with the one after that)
        assert taken_in - batches_before <= 2, handler.batches[batches_before:]
    live.close()
    wait_until(lambda: len(handler.stored) == 84)
    for batch in handler.batches:
        assert all(v.startswith(b"old") for v in batch) or not any(
            v.startswith(b"old") for v in batch
        ), batch  # live or backfill, never both


class CommitLog(NoAttemptLog):
    """Notes the offsets of every commit."""

    def __init__(self) -> None:
        self.calls: list[dict[tuple[str, int], int]] = []

    def committed(self, group: str, next_offsets: Mapping[tuple[str, int], int]) -> None:
        self.calls.append(dict(next_offsets))


def test_a_live_message_is_served_between_the_chunks_of_a_backfill_batch(
    kafka: KafkaSettings, start_worker: Callable[..., RunningWorker]
) -> None:
    """A backfill batch of 16 is handled 4 at a time with the live input looked at
    between chunks: a live message produced during one waits behind a chunk or two, not
    the rest of the batch, and is handled as a batch of its own; its offset is committed
    with the backfill batch's, in one commit."""
    handler = SlowHandler(seconds=0.3)
    commits = CommitLog()
    spec = ServiceSpec("test", (IN,), backfill_topics=(BACKFILL,))
    start_worker(
        handler, spec, attempts=commits, max_batch=16, backfill_max_batch=16, backfill_chunk=4
    )
    live = make_producer(kafka)
    live.send(IN, key=b"k", value=b"first")
    live.flush()
    wait_until(lambda: handler.stored == [b"first"])
    bus_helpers.produce(kafka, BACKFILL, [f"old{i:02}".encode() for i in range(48)])
    # old16-19 done: the second backfill batch (old16-31) is one chunk in
    wait_until(lambda: b"old19" in handler.stored)
    live.send(IN, key=b"k", value=b"new")
    live.flush()
    live.close()
    wait_until(lambda: len(handler.stored) == 50)

    assert all(len(b) <= 4 for b in handler.batches), handler.batches
    assert [b"new"] in handler.batches  # on its own
    position = {value: i for i, value in enumerate(handler.stored)}
    # before the second batch's last chunk: it did not wait for the batch to end
    assert position[b"new"] < position[b"old28"], handler.batches
    assert sorted(v for v in handler.stored if v.startswith(b"old")) == sorted(
        f"old{i:02}".encode() for i in range(48)
    )  # each backfill message once
    wait_until(lambda: {(BACKFILL, 0): 48} in commits.calls)
    assert {(IN, 0): 2, (BACKFILL, 0): 32} in commits.calls, commits.calls


def test_after_finding_live_messages_the_chunks_look_again_only_later(
    kafka: KafkaSettings, start_worker: Callable[..., RunningWorker]
) -> None:
    """``backfill_live_every_ms``: once a look at the live input found messages, the
    chunks of a backfill batch do not look again before that long (each fetch that
    returns messages costs the broker): live messages produced meanwhile wait for the
    batch's end and come together."""
    handler = SlowHandler(seconds=0.3)
    spec = ServiceSpec("test", (IN,), backfill_topics=(BACKFILL,))
    start_worker(handler, spec, max_batch=16, backfill_max_batch=16, backfill_chunk=4,
                 backfill_live_every_ms=60_000)  # fmt: skip
    live = make_producer(kafka)
    live.send(IN, key=b"k", value=b"first")
    live.flush()
    wait_until(lambda: handler.stored == [b"first"])  # found: no look for 60 s now
    bus_helpers.produce(kafka, BACKFILL, [f"old{i:02}".encode() for i in range(16)])
    # n0 once the batch's first chunk is done (the backfill group may take a while to
    # join), n1 once its second is
    for value, after in ((b"n0", b"old03"), (b"n1", b"old07")):
        wait_until(lambda after=after: after in handler.stored, timeout_s=50)  # type: ignore[misc]
        live.send(IN, key=b"k", value=value)
        live.flush()
    live.close()
    wait_until(lambda: len(handler.stored) == 19)

    position = {value: i for i, value in enumerate(handler.stored)}
    assert position[b"n0"] > position[b"old15"], handler.batches  # not between chunks
    assert [b"n0", b"n1"] in handler.batches, handler.batches  # together, after the batch


@dataclass
class TimedHandler(RecordingHandler):
    """Notes when each message's batch started."""

    started: dict[bytes, float] = field(default_factory=dict)

    def handle(self, batch: Sequence[InboundMessage]) -> list[ItemResult]:
        now = time.monotonic()
        self.started.update((m.value, now) for m in batch)
        return super().handle(batch)


def test_a_hold_keeps_backfill_back_after_live_input_then_lets_it_finish(
    kafka: KafkaSettings, start_worker: Callable[..., RunningWorker]
) -> None:
    """``backfill_hold_s``: after a live message no backfill is taken for that long,
    then the backfill goes on."""
    handler = TimedHandler()
    start_worker(handler, ServiceSpec("test", (IN,), backfill_topics=(BACKFILL,)),
                 backfill_hold_s=1.5)  # fmt: skip
    produce(kafka, [b"first"])  # the worker is in its groups
    wait_until(lambda: b"first" in handler.started)
    time.sleep(1.5)
    produce(kafka, [b"live"])
    wait_until(lambda: b"live" in handler.started)  # (seen: else backfill may go first)
    bus_helpers.produce(kafka, BACKFILL, [f"old{i}".encode() for i in range(6)])
    wait_until(lambda: len(handler.stored) == 8, timeout_s=120)  # (a loaded machine)

    first_old = min(t for v, t in handler.started.items() if v.startswith(b"old"))
    # the hold counts from the live poll; the live batch then waited max_wait_ms (0.3 s)
    assert first_old - handler.started[b"live"] >= 1.5 - 0.3


def test_what_backfill_work_makes_goes_on_to_the_next_stage_as_backfill(
    kafka: KafkaSettings, start_worker: Callable[..., RunningWorker]
) -> None:
    """OUT is the next stage's input here: a live item's output goes there, a backfill
    item's to that stage's backfill topic, so the next stage keeps live work first."""
    next_backfill = "test.out.backfill"
    topics = kafka.model_copy(
        update={"images_accepted_topic": OUT, "backfill_images_topic": next_backfill}
    )
    ensure_topics(kafka, [next_backfill])
    start_worker(RecordingHandler(), ServiceSpec("test", (IN,), backfill_topics=(BACKFILL,)),
                 topics)  # fmt: skip
    produce(kafka, [b"new"])
    bus_helpers.produce(kafka, BACKFILL, [b"old"])

    assert read_all(kafka, next_backfill, expected=1, timeout_s=60) == [b"OLD"]
    assert read_all(kafka, OUT, expected=1, timeout_s=60) == [b"NEW"]


def test_batches_are_bounded_and_outputs_flow_downstream(
    kafka: KafkaSettings, start_worker: Callable[..., RunningWorker]
) -> None:
    handler = RecordingHandler()
    produce(kafka, [f"m{i}".encode() for i in range(10)])
    start_worker(handler)

    assert sorted(read_all(kafka, OUT, 10)) == sorted(f"M{i}".encode() for i in range(10))
    assert all(len(b) <= 4 for b in handler.batches)
    assert sum(len(b) for b in handler.batches) == 10


def test_poison_item_goes_to_dlq_alone_after_three_attempts(
    kafka: KafkaSettings, start_worker: Callable[..., RunningWorker]
) -> None:
    handler = RecordingHandler()
    produce(kafka, [b"a", b"poison", b"b"])
    running = start_worker(handler)

    dead = [json.loads(v) for v in read_all(kafka, kafka.dlq_topic, 1)]
    assert sorted(read_all(kafka, OUT, 2)) == [b"A", b"B"]
    assert len(dead) == 1
    letter = dead[0]
    assert letter["stage"] == "test"
    assert letter["reason"] == "processing_error"
    assert letter["error_type"] == "ValueError"
    assert letter["message"] == "cannot decode poison"
    assert letter["attempts"] == 3
    assert (letter["topic"], letter["partition"], letter["offset"]) == (IN, 0, 1)
    assert letter["value"] == "poison"
    assert [f.offset for f in handler.failures] == [1]
    dead_letters = running.worker.metrics.registry.get_sample_value(
        "glimpse_worker_dead_letters_total", {"service": "test", "reason": "processing_error"}
    )
    assert dead_letters == 1
    # what `glimpse status` shows as the stage's last error
    last = running.worker.activity.snapshot()["last_error"]
    assert (last["kind"], last["error_type"]) == ("item", "ValueError")


def test_item_marked_permanently_bad_is_dead_lettered_at_once(
    kafka: KafkaSettings, start_worker: Callable[..., RunningWorker]
) -> None:
    handler = RecordingHandler()
    produce(kafka, [b"bad", b"good"])
    start_worker(handler)

    letter = json.loads(read_all(kafka, kafka.dlq_topic, 1)[0])
    assert letter["attempts"] == 1
    assert letter["message"] == "bad input"
    assert read_all(kafka, OUT, 1) == [b"GOOD"]


def test_a_failing_record_failure_does_not_stop_the_dead_letter_or_the_worker(
    kafka: KafkaSettings, start_worker: Callable[..., RunningWorker]
) -> None:
    # e.g. ingest's record_failure parsing an event its handler could not parse either
    handler = RecordingHandler(record_error=RecursionError("maximum recursion depth"))
    produce(kafka, [b"bad", b"good"])
    running = start_worker(handler)

    letter = json.loads(read_all(kafka, kafka.dlq_topic, 1)[0])
    assert letter["message"] == "bad input"
    assert read_all(kafka, OUT, 1) == [b"GOOD"]
    produce(kafka, [b"later"])
    assert sorted(read_all(kafka, OUT, 2)) == [b"GOOD", b"LATER"]
    errors = running.worker.metrics.registry.get_sample_value(
        "glimpse_worker_record_failure_errors_total",
        {"service": "test", "error": "RecursionError"},
    )
    assert errors == 1


def test_an_output_the_broker_refuses_dead_letters_its_item_only(
    kafka: KafkaSettings, start_worker: Callable[..., RunningWorker]
) -> None:
    handler = RecordingHandler()
    produce(kafka, [b"a", b"huge", b"b"])
    start_worker(handler)

    letter = json.loads(read_all(kafka, kafka.dlq_topic, 1)[0])
    assert letter["error_type"] == "MessageSizeTooLargeError"
    assert letter["offset"] == 1
    assert [f.offset for f in handler.failures] == [1]
    # "A" went out before the refusal and again item by item: downstream is idempotent
    assert set(read_all(kafka, OUT, 3)) == {b"A", b"B"}


def test_infrastructure_errors_are_retried_and_never_dead_lettered(
    kafka: KafkaSettings, start_worker: Callable[..., RunningWorker]
) -> None:
    handler = RecordingHandler(transient_failures=4)
    produce(kafka, [b"x"])
    running = start_worker(handler)

    assert read_all(kafka, OUT, 1) == [b"X"]
    assert handler.calls == 5
    assert read_all(kafka, kafka.dlq_topic, 1, timeout_s=1) == []
    samples = running.worker.metrics.registry.get_sample_value(
        "glimpse_worker_transient_errors_total", {"service": "test", "error": "TransientError"}
    )
    assert samples == 4


def test_stop_during_retries_commits_nothing_and_the_batch_comes_again(
    kafka: KafkaSettings, start_worker: Callable[..., RunningWorker]
) -> None:
    produce(kafka, [b"p", b"q"])
    stuck = RecordingHandler(transient_failures=10**6)  # the database never comes back
    first = start_worker(stuck)
    wait_until(lambda: stuck.calls >= 2)
    first.stop()
    assert stuck.stored == []

    healthy = RecordingHandler()
    start_worker(healthy)
    assert sorted(read_all(kafka, OUT, 2)) == [b"P", b"Q"]
    assert sorted(healthy.stored) == [b"p", b"q"]


def test_committed_work_is_not_redelivered_to_the_next_worker(
    kafka: KafkaSettings, start_worker: Callable[..., RunningWorker]
) -> None:
    produce(kafka, [b"once"])
    first_handler = RecordingHandler()
    first = start_worker(first_handler)
    wait_until(lambda: first_handler.stored == [b"once"])
    wait_until(
        lambda: (
            first.worker.metrics.registry.get_sample_value(
                "glimpse_worker_last_commit_timestamp_seconds", {"service": "test"}
            )
            is not None
        )
    )
    first.stop()

    second_handler = RecordingHandler()
    start_worker(second_handler)
    produce(kafka, [b"later"])
    wait_until(lambda: second_handler.stored == [b"later"])
    assert b"once" not in second_handler.stored


@dataclass
class SlowHandler(RecordingHandler):
    """Takes ``seconds`` over every batch, as whisper does over a long voice note."""

    seconds: float = 0.0

    def handle(self, batch: Sequence[InboundMessage]) -> list[ItemResult]:
        time.sleep(self.seconds)
        return super().handle(batch)


def test_a_batch_is_live_for_as_long_as_its_service_allows(
    kafka: KafkaSettings, start_worker: Callable[..., RunningWorker]
) -> None:
    patient = start_worker(SlowHandler(seconds=2.0), ServiceSpec("patient", (IN,), 30.0))
    hasty = start_worker(SlowHandler(seconds=2.0), ServiceSpec("hasty", (IN,), 1.0))
    produce(kafka, [b"long note"])
    wait_until(lambda: not hasty.worker.is_live())  # 1 s into a 2 s batch

    assert patient.worker.is_live()
    wait_until(lambda: len(hasty.worker.handler.stored) == 1)  # type: ignore[attr-defined]
    wait_until(hasty.worker.is_live)  # back to polling: live again
