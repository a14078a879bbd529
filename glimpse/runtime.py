"""The one worker loop every glimpse service runs.

consume → micro-batch (max items / max wait) → ``handler.handle(batch)`` → record
failures → produce outputs and dead letters, flush → commit offsets. Offsets are
committed only after all of that succeeded, so a crash anywhere re-delivers the
batch, and handlers are idempotent so re-delivery changes nothing.

- Infrastructure errors (broker, S3, Postgres unreachable) are retried with capped
  exponential backoff and jitter, forever; nothing is committed past them.
- An item that fails ``max_attempts`` times, or that the handler marks as
  permanently failed, is recorded by the handler and sent to the DLQ; its
  partition keeps moving. The DLQ message goes out even when recording fails.
- An item that kills the process (OOM, SIGKILL) is counted in an ``AttemptLog``
  (Postgres) before each handler call; after ``max_crashes`` deaths it is
  dead-lettered (``crashed_worker``) without being run again. An item that died once
  before is run alone, so it cannot take others down with it.
- SIGTERM sets a stop flag: no new batch is taken, an unfinished batch is not
  committed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import partial
from types import FrameType
from typing import Any, Protocol, TypeVar

import psycopg
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata
from psycopg_pool import ConnectionPool

from glimpse.activity import Activity
from glimpse.bus import InboundMessage, OutboundMessage, make_consumer, make_producer, send_all
from glimpse.config import DatabaseSettings, KafkaSettings, WorkerSettings
from glimpse.db import worker_starts
from glimpse.db.attempts import PostgresAttemptLog
from glimpse.db.pool import open_pool
from glimpse.dependencies import Dependency, wait_for
from glimpse.errors import WorkerCrashed, backoff_delay, failure_reason, is_transient
from glimpse.health import HealthServer
from glimpse.lag import WorkerLag
from glimpse.metrics import WorkerMetrics
from glimpse.stages import backfill_group_of, backfill_routes, group_of

log = logging.getLogger(__name__)
T = TypeVar("T")
# A dead letter carries the message's value for people to read; bounded so the letter
# itself always fits under the broker's message size limit (hex doubles binary).
_MAX_LETTER_VALUE_CHARS = 256 * 1024


class Outcome(StrEnum):
    OK = "ok"
    REJECTED = "rejected"  # bad input, recorded with a reason: a normal, final result
    SKIPPED = "skipped"  # nothing to do (ignored event, deleted object, already done)
    DLQ = "dlq"


@dataclass(frozen=True, slots=True)
class Done:
    """The item is finished; ``outputs`` go downstream before the commit."""

    outputs: Sequence[OutboundMessage] = ()
    outcome: Outcome = Outcome.OK


@dataclass(frozen=True, slots=True)
class Failed:
    """The item could not be processed. ``permanent`` sends it to the DLQ at once;
    otherwise it is retried alone up to ``max_attempts`` times first."""

    error: BaseException
    permanent: bool = False


ItemResult = Done | Failed


@dataclass(frozen=True, slots=True)
class DeadLetter:
    stage: str
    reason: str  # machine-readable: processing_error, crashed_worker, thumbnail_missing...
    error_type: str
    message: str
    attempts: int
    topic: str
    partition: int
    offset: int
    key: str | None
    value: str
    failed_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    version: int = 1

    @property
    def origin(self) -> str:
        """Where the message was: ``topic/partition@offset``."""
        return f"{self.topic}/{self.partition}@{self.offset}"

    @classmethod
    def of(
        cls, stage: str, message: InboundMessage, error: BaseException, attempts: int
    ) -> DeadLetter:
        return cls(
            stage=stage,
            reason=failure_reason(error),
            error_type=type(error).__name__,
            message=str(error) or repr(error),
            attempts=attempts,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key.decode("utf-8", "replace") if message.key is not None else None,
            # DLQ readers are people and scripts: keep text readable, mark binary as hex.
            value=_printable(message.value),
        )

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()


def _printable(value: bytes) -> str:
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        text = "hex:" + value[: _MAX_LETTER_VALUE_CHARS // 2].hex()
    if len(text) > _MAX_LETTER_VALUE_CHARS:
        return text[:_MAX_LETTER_VALUE_CHARS] + f"... ({len(value):,} bytes in all)"
    return text


class Handler(Protocol):
    """What a service implements. ``handle`` returns one result per message, in order."""

    def handle(self, batch: Sequence[InboundMessage]) -> Sequence[ItemResult]: ...

    def record_failure(self, message: InboundMessage, letter: DeadLetter) -> None:
        """Record a dead-lettered item where users see it (e.g. the media row)."""
        ...

    def close(self) -> None:
        """Release what the handler opened (pools, threads); called once at shutdown."""
        ...


class AttemptLog(Protocol):
    """Handler calls started and not finished, per message, kept where a process
    death cannot lose them. A count left over when a message comes again is the
    number of times a worker died while processing it."""

    def crashes(self, group: str, messages: Sequence[InboundMessage]) -> list[int]: ...

    def started(self, group: str, messages: Sequence[InboundMessage]) -> None: ...

    def finished(self, group: str, messages: Sequence[InboundMessage]) -> None: ...

    def committed(self, group: str, next_offsets: Mapping[tuple[str, int], int]) -> None:
        """Forget every message below the committed offsets."""
        ...

    def close(self) -> None: ...


class NoAttemptLog:
    """Remembers nothing: a crash-looping item is not detected (for tests of other things)."""

    def crashes(self, group: str, messages: Sequence[InboundMessage]) -> list[int]:
        return [0] * len(messages)

    def started(self, group: str, messages: Sequence[InboundMessage]) -> None:
        return

    def finished(self, group: str, messages: Sequence[InboundMessage]) -> None:
        return

    def committed(self, group: str, next_offsets: Mapping[tuple[str, int], int]) -> None:
        return

    def close(self) -> None:
        return


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """A service's declaration: its stage name and the topics it reads."""

    name: str
    input_topics: tuple[str, ...]
    # The longest one batch may legitimately take. Past it the worker reports itself
    # not live, and the broker hands its partitions to another member; a service whose
    # items can take long (hours of audio) raises it.
    max_batch_seconds: float = 300.0
    # Read too, but only while the input topics are quiet (backfill, repair, re-drives).
    backfill_topics: tuple[str, ...] = ()
    # Appended to both consumer groups: a worker running a second model of a stage side
    # by side reads every message too, in groups of its own (``stages.side_by_side``).
    group_suffix: str = ""

    @property
    def group(self) -> str:
        return group_of(self.name) + self.group_suffix

    @property
    def backfill_group(self) -> str:
        return backfill_group_of(self.name) + self.group_suffix


class _Stopping(BaseException):
    """Raised inside the loop when a stop was requested during a retry wait; a
    BaseException so that no ``except Exception`` on the way swallows it."""


class Worker:
    def __init__(
        self,
        spec: ServiceSpec,
        handler: Handler,
        consumer: KafkaConsumer,
        producer: KafkaProducer,
        kafka: KafkaSettings,
        settings: WorkerSettings,
        metrics: WorkerMetrics,
        attempts: AttemptLog | None = None,
        activity: Activity | None = None,
        backfill: KafkaConsumer | None = None,
    ) -> None:
        self.spec = spec
        self.handler = handler
        self.consumer = consumer
        # The backfill topics, in a consumer (and group) of their own: in one consumer,
        # a buffered fetch of a backfill topic would stand in front of live messages.
        self.backfill = backfill
        self.producer = producer
        self.kafka = kafka
        self.settings = settings
        self.metrics = metrics
        self.attempts: AttemptLog = attempts or NoAttemptLog()
        self.activity = activity or Activity()
        self._stop = threading.Event()
        self._last_beat = time.monotonic()
        self._infra_failing = False
        self._started = False
        self._lag = WorkerLag(metrics.consumer_lag, spec.name)
        self._backfill_lag = WorkerLag(metrics.consumer_lag, spec.name)
        self._live_seen = float("-inf")
        self._backfill_busy = False
        self._served_live: list[InboundMessage] = []  # committed with the backfill batch
        self._to_backfill = backfill_routes(kafka)

    # --- lifecycle -----------------------------------------------------------------
    def request_stop(self) -> None:
        self._stop.set()

    def is_live(self) -> bool:
        return time.monotonic() - self._last_beat < self.spec.max_batch_seconds

    def is_ready(self) -> bool:
        return self._started and not self._infra_failing and not self._stop.is_set()

    def run(self) -> None:
        self._started = True
        name = self.spec.name
        # set now, so "no commit since" is defined for a worker stuck on its first batch
        now = time.time()
        self.metrics.last_commit.labels(name).set(now)
        self.metrics.last_progress.labels(name).set(now)
        self.metrics.max_batch_seconds.labels(name).set(self.spec.max_batch_seconds)
        for outcome in Outcome:  # at 0, so that the first of each is an increase too
            self.metrics.messages.labels(name, outcome.value)
        log.info("%s: consuming %s as %s", self.spec.name, self.spec.input_topics, self.spec.group)
        while not self._stop.is_set():
            batch = self._collect()
            if not batch:
                continue
            try:
                self._process_and_commit(batch)
            except _Stopping:
                log.info(
                    "%s: stopping; %d uncommitted messages will be re-delivered",
                    self.spec.name,
                    len(batch) + len(self._served_live),
                )
                break
        log.info("%s: stopped", self.spec.name)

    # --- the loop ------------------------------------------------------------------
    def _collect(self) -> list[InboundMessage]:
        """Up to ``max_batch`` messages, waiting at most ``max_wait_ms`` after the first;
        live input first, backfill only while live input is quiet. A batch is either
        live or backfill, never both: a live message waits for no backfill item of its
        own batch."""
        batch: list[InboundMessage] = []
        deadline: float | None = None
        while not self._stop.is_set() and len(batch) < self.settings.max_batch:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            timeout_ms = 500 if deadline is None else max(1, int((deadline - now) * 1000))
            room = self.settings.max_batch - len(batch)
            polled = self.consumer.poll(timeout_ms=self._live_wait_ms(timeout_ms, batch),
                                        max_records=room)  # fmt: skip
            self._last_beat = time.monotonic()
            from_backfill = False
            if polled:
                self._live_seen = self._last_beat
            elif batch and self._backfill_busy:
                break  # with a backfill flowing, a live batch goes with what is there
            elif self.backfill is not None and not batch:
                from_backfill = True
                # small batches of backfill: a live message arriving meanwhile waits
                # for at most one of them
                polled = self._poll_backfill(
                    timeout_ms, min(room, self.settings.backfill_max_batch)
                )
            batch.extend(self._inbound(polled))
            lag = self._lag.update(self.consumer, batch)
            if self.backfill is not None:
                waiting = self._backfill_lag.update(self.backfill, batch)
                lag = None if lag is None and waiting is None else (lag or 0) + (waiting or 0)
            self.activity.lag(lag)
            if lag == 0:
                self.metrics.last_progress.labels(self.spec.name).set(time.time())  # caught up
            if batch and deadline is None:
                deadline = time.monotonic() + self.settings.max_wait_ms / 1000
            if from_backfill and polled:
                break  # a backfill batch is done; look at the live input first again
        return batch

    def _inbound(self, polled: Mapping[TopicPartition, list[Any]]) -> list[InboundMessage]:
        inbound: list[InboundMessage] = []
        for tp, records in polled.items():
            self.metrics.consumed.labels(self.spec.name, tp.topic).inc(len(records))
            inbound.extend(
                InboundMessage(r.topic, r.partition, r.offset, r.key, r.value, r.timestamp)
                for r in records
            )
        return inbound

    def _live_wait_ms(self, timeout_ms: int, batch: Sequence[InboundMessage]) -> int:
        """How long to wait for live input. While a backfill flows, only as long as a
        fetch takes (``backfill_live_check_ms``): a poll that does not wait only sends
        the fetch, and its answer would be read after the next backfill batch; and a
        live batch then goes with what came (each backfilled photo brings a live event,
        its thumbnail's: waiting ``max_wait_ms`` for more after each halved ingest)."""
        if not self._backfill_busy:
            return timeout_ms
        return min(timeout_ms, self.settings.backfill_live_check_ms)

    def _poll_backfill(self, timeout_ms: int, room: int) -> Mapping[TopicPartition, list[Any]]:
        """Backfill records, unless live messages came within ``backfill_hold_s``: then
        the backfill consumer is polled paused, which keeps it in its group."""
        assert self.backfill is not None
        held = time.monotonic() - self._live_seen < self.settings.backfill_hold_s
        assigned = self.backfill.assignment()
        if held:
            self.backfill.pause(*assigned)
        else:
            self.backfill.resume(*assigned)
        polled: Mapping[TopicPartition, list[Any]] = self.backfill.poll(
            timeout_ms=0 if held else timeout_ms, max_records=room
        )
        # held is busy too: the live input is only looked at meanwhile, so the backfill
        # goes on as soon as the hold ends (not after a long live poll)
        self._backfill_busy = held or bool(polled)
        return polled

    def _process_and_commit(self, batch: list[InboundMessage]) -> None:
        started = time.perf_counter()
        self._process(batch)
        # live messages served between this batch's chunks are committed with it: one
        # commit (a write on the broker) per batch rather than one per chunk
        self._commit([*self._served_live, *batch])
        self._served_live.clear()
        self._observe_done(batch, started)

    def _process(self, batch: list[InboundMessage]) -> None:
        """Handle ``batch`` and send every item's outputs or dead letter (no commit)."""
        name = self.spec.name
        self.metrics.inflight.labels(name).set(len(batch))
        finished = self._finished(batch)
        deliveries: list[tuple[InboundMessage, list[OutboundMessage]]] = []
        backfill = set(self.spec.backfill_topics)
        for message, (result, attempts) in zip(batch, finished, strict=True):
            if isinstance(result, Done):
                outputs = list(result.outputs)
                if message.topic in backfill:  # backfill work stays backfill downstream
                    outputs = [self._as_backfill(o) for o in outputs]
                deliveries.append((message, outputs))
                self.metrics.messages.labels(name, result.outcome.value).inc()
                continue
            deliveries.append((message, [self._dead_letter(message, result.error, attempts)]))
            self.metrics.messages.labels(name, Outcome.DLQ.value).inc()
        self._deliver(deliveries)

    def _observe_done(self, batch: Sequence[InboundMessage], started: float) -> None:
        """The batch's size, seconds and count in the metrics and the activity log."""
        name = self.spec.name
        self.metrics.inflight.labels(name).set(0)
        self.metrics.batch_size.labels(name).observe(len(batch))
        self.metrics.batch_seconds.labels(name).observe(time.perf_counter() - started)
        self.activity.finished(len(batch))

    def _finished(self, batch: Sequence[InboundMessage]) -> list[tuple[ItemResult, int]]:
        """Every message's final result. A backfill batch is handled ``backfill_chunk``
        messages at a time with live input served in between, so a live message waits
        behind one chunk rather than the whole batch, while the outputs and the commit
        (each a write on the broker) still go once per batch."""
        chunk = self.settings.backfill_chunk
        if not batch or batch[0].topic not in self.spec.backfill_topics or len(batch) <= chunk:
            return self._with_infra_retry(lambda: self._results(batch))
        finished: list[tuple[ItemResult, int]] = []
        for start in range(0, len(batch), chunk):
            if start and self._may_look_at_live():
                self._serve_live()
                self.metrics.inflight.labels(self.spec.name).set(len(batch))
            part = batch[start : start + chunk]
            finished.extend(self._with_infra_retry(partial(self._results, part)))
        return finished

    def _may_look_at_live(self) -> bool:
        """Whether to look at the live input between two chunks: always after a look
        that found nothing (reading the long-polled fetch costs the broker little), but
        after one that found messages only ``backfill_live_every_ms`` later (a fetch that
        returns messages is what costs it)."""
        since_found = time.monotonic() - self._live_seen
        return since_found >= self.settings.backfill_live_every_ms / 1000

    def _serve_live(self) -> None:
        """Between two chunks of a backfill batch: what came on the live input meanwhile,
        processed and its outputs sent at once, as a batch of its own; its offsets are
        committed with the backfill batch's (a crash in between re-delivers both). The
        poll does not wait: it reads the answer to the fetch the last one sent, so a live
        message waits behind at most two chunks. Committing per chunk doubled the broker's
        work in a 10,000-object backfill: ingest sees a live event per backfilled photo,
        its thumbnail's."""
        polled = self.consumer.poll(timeout_ms=0, max_records=self.settings.max_batch)
        self._last_beat = time.monotonic()
        if not polled:
            return
        started = time.perf_counter()
        self._live_seen = self._last_beat
        live = self._inbound(polled)
        self._lag.update(self.consumer, live)
        self._process(live)
        self._served_live.extend(live)
        self._observe_done(live, started)

    def _as_backfill(self, out: OutboundMessage) -> OutboundMessage:
        topic = self._to_backfill.get(out.topic)
        return out if topic is None else OutboundMessage(topic, out.key, out.value)

    def _dead_letter(
        self, message: InboundMessage, error: BaseException, attempts: int
    ) -> OutboundMessage:
        """Record the failure through the handler and build its DLQ message. The DLQ
        message is the record of last resort: it goes out even if recording fails."""
        name = self.spec.name
        letter = DeadLetter.of(name, message, error, attempts)
        self.activity.error("item", error)
        self.metrics.dead_letters.labels(name, letter.reason).inc()
        log.error(
            "%s: dead-lettering %s/%d@%d after %d attempt(s): %s (%s: %s)",
            name,
            message.topic,
            message.partition,
            message.offset,
            attempts,
            letter.reason,
            letter.error_type,
            letter.message,
        )
        try:
            self._with_infra_retry(partial(self.handler.record_failure, message, letter))
        except Exception as exc:
            # Raising here would re-deliver the batch and fail the same way forever.
            log.exception("%s: could not record the failure of %s", name, letter.origin)
            self.metrics.record_failure_errors.labels(name, type(exc).__name__).inc()
        return OutboundMessage(self.kafka.dlq_topic, message.key, letter.to_json())

    def _deliver(self, deliveries: Sequence[tuple[InboundMessage, list[OutboundMessage]]]) -> None:
        """Produce every item's outputs (or dead letter), waiting for the acks."""
        everything = [out for _, outs in deliveries for out in outs]
        if not everything:
            return
        try:
            self._with_infra_retry(lambda: send_all(self.producer, everything, timeout_s=30))
            return
        except Exception as exc:
            # The broker refuses something (e.g. a message over its size limit): find
            # whose, and dead-letter that item; re-sent outputs are harmless downstream.
            log.warning(
                "%s: sending the batch's outputs failed (%r); item by item", self.spec.name, exc
            )
        for message, outs in deliveries:
            try:
                self._with_infra_retry(partial(send_all, self.producer, outs, timeout_s=30))
            except Exception as exc:
                if outs and outs[0].topic == self.kafka.dlq_topic:
                    log.error("%s: the DLQ refused the letter for %s@%d: %r",
                              self.spec.name, message.topic, message.offset, exc)  # fmt: skip
                    continue
                letter = self._dead_letter(message, exc, attempts=1)
                self._with_infra_retry(partial(send_all, self.producer, [letter], timeout_s=30))

    def _results(self, batch: Sequence[InboundMessage]) -> list[tuple[ItemResult, int]]:
        """One final result per message with its attempt count. Transient errors propagate."""
        crashes = self.attempts.crashes(self.spec.group, batch)
        first: dict[int, ItemResult] = {}
        fresh: list[int] = []
        for i, died in enumerate(crashes):
            if died >= self.settings.max_crashes:
                self.metrics.crashed_items.labels(self.spec.name).inc()
                first[i] = Failed(WorkerCrashed(died), permanent=True)
            elif died:
                first[i] = self._single(batch[i])  # alone: it may kill the process again
            else:
                fresh.append(i)
        if fresh:
            first.update(zip(fresh, self._batch([batch[i] for i in fresh]), strict=True))
        finished: list[tuple[ItemResult, int]] = []
        for i, message in enumerate(batch):
            # A crashed item's letter counts its deaths; others count handler attempts.
            result = first[i]
            attempts = crashes[i] if crashes[i] >= self.settings.max_crashes else 1
            while (
                isinstance(result, Failed)
                and not result.permanent
                and attempts < self.settings.max_attempts
            ):
                self.metrics.retries.labels(self.spec.name).inc()
                self._sleep(
                    backoff_delay(
                        attempts, self.settings.backoff_initial_s, self.settings.backoff_max_s
                    )
                )
                attempts += 1
                result = self._single(message)
            finished.append((result, attempts))
        return finished

    def _batch(self, batch: Sequence[InboundMessage]) -> list[ItemResult]:
        try:
            results = self._call(batch)
        except Exception as exc:
            if is_transient(exc):
                raise
            if len(batch) == 1:
                return [Failed(exc)]
            # Isolate the poison item: the rest of the batch must still succeed.
            log.warning(
                "%s: batch of %d failed (%r); retrying items one by one",
                self.spec.name,
                len(batch),
                exc,
            )
            return [self._single(m) for m in batch]
        if len(results) != len(batch):
            raise RuntimeError(
                f"{self.spec.name}: handler returned {len(results)} results "
                f"for {len(batch)} messages"
            )
        return results

    def _single(self, message: InboundMessage) -> ItemResult:
        try:
            return self._call([message])[0]
        except Exception as exc:
            if is_transient(exc):
                raise
            return Failed(exc)

    def _call(self, messages: Sequence[InboundMessage]) -> list[ItemResult]:
        """``handler.handle`` between two committed marks: a mark left behind says the
        process died inside (only a return or an ``Exception`` clears it)."""
        group = self.spec.group
        self.attempts.started(group, messages)
        try:
            results = list(self.handler.handle(messages))
        except Exception:
            self.attempts.finished(group, messages)
            raise
        self.attempts.finished(group, messages)
        return results

    def _with_infra_retry(self, action: Callable[[], T]) -> T:
        """Run ``action``; on infrastructure errors back off and retry until it works."""
        attempt = 0
        while True:
            try:
                result = action()
                self._infra_failing = False
                return result
            except Exception as exc:
                if not is_transient(exc):
                    raise
                attempt += 1
                self._infra_failing = True
                self.activity.error("transient", exc)
                self.metrics.transient_errors.labels(self.spec.name, type(exc).__name__).inc()
                delay = backoff_delay(
                    attempt, self.settings.backoff_initial_s, self.settings.backoff_max_s
                )
                log.warning(
                    "%s: infrastructure error (%s: %s); retry %d in %.1fs",
                    self.spec.name,
                    type(exc).__name__,
                    exc,
                    attempt,
                    delay,
                )
                self._sleep(delay)

    def _sleep(self, seconds: float) -> None:
        self._last_beat = time.monotonic()
        if self._stop.wait(seconds):
            raise _Stopping

    def _commit(self, batch: Sequence[InboundMessage]) -> None:
        backfill_topics = set(self.spec.backfill_topics)
        committed = self._commit_on(
            self.consumer, [m for m in batch if m.topic not in backfill_topics]
        )
        if self.backfill is not None:
            committed.update(
                self._commit_on(self.backfill, [m for m in batch if m.topic in backfill_topics])
            )
        if not committed:
            return
        now = time.time()
        self.metrics.last_commit.labels(self.spec.name).set(now)
        self.metrics.last_progress.labels(self.spec.name).set(now)
        try:
            self.attempts.committed(self.spec.group, committed)
        except Exception as exc:
            # Only bookkeeping: the next commit on the partition deletes these rows too.
            log.warning("%s: could not forget committed attempts (%r)", self.spec.name, exc)

    def _commit_on(
        self, consumer: KafkaConsumer, messages: Sequence[InboundMessage]
    ) -> dict[tuple[str, int], int]:
        """Commit ``messages`` on ``consumer``; the next offsets it committed (none when
        the commit failed: the batch then comes again)."""
        next_offsets: dict[TopicPartition, int] = {}
        first_offsets: dict[TopicPartition, int] = {}
        for m in messages:
            tp = TopicPartition(m.topic, m.partition)
            next_offsets[tp] = max(next_offsets.get(tp, 0), m.offset + 1)
            first_offsets[tp] = min(first_offsets.get(tp, m.offset), m.offset)
        if not next_offsets:
            return {}
        try:
            consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in next_offsets.items()})
        except Exception as exc:
            # Results are stored, so re-delivery is harmless: rewind what we still own
            # and let the batch come again (a rebalance gives the rest to another worker).
            log.warning(
                "%s: commit failed (%r); the batch will be re-delivered", self.spec.name, exc
            )
            owned = consumer.assignment()
            for tp, offset in first_offsets.items():
                if tp in owned:
                    consumer.seek(tp, offset)
            return {}
        return {(tp.topic, tp.partition): o for tp, o in next_offsets.items()}


def run_service(
    spec: ServiceSpec,
    make_handler: Callable[[], Handler],
    kafka: KafkaSettings,
    settings: WorkerSettings,
    metrics: WorkerMetrics,
    database: DatabaseSettings,
    dependencies: Sequence[Dependency] = (),
) -> None:
    """Run ``spec`` until SIGTERM/SIGINT: health server, consumer, producer, loop.

    ``make_handler`` loads models and opens clients; then the worker waits (with
    backoff, never exiting) until every one of ``dependencies`` answers. Readiness
    waits for both; ``/readyz`` says which phase the worker is in.
    ``database`` keeps the attempt log that finds items which kill the worker.
    """
    with contextlib.ExitStack() as resources:
        state: dict[str, Worker] = {}
        phase = ["loading models"]
        stop_requested = threading.Event()
        models_loaded = threading.Event()

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("%s: received %s", spec.name, signal.Signals(signum).name)
            stop_requested.set()
            if "worker" in state:
                state["worker"].request_stop()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

        def readiness() -> str:
            if "worker" not in state:
                return phase[0]
            return "ready" if state["worker"].is_ready() else "infrastructure failing"

        activity = Activity()
        if settings.health_port:
            health = HealthServer(
                settings.health_host,
                settings.health_port,
                metrics.registry,
                live=lambda: "worker" not in state or state["worker"].is_live(),
                ready=lambda: "worker" in state and state["worker"].is_ready(),
                detail=readiness,
                status=activity.snapshot,
                started=models_loaded.is_set,  # /startupz
            )
            health.start()
            resources.callback(health.stop)

        handler = make_handler()
        models_loaded.set()
        resources.callback(handler.close)
        pool = open_pool(database, f"{spec.name}-attempts")
        attempts = PostgresAttemptLog(pool)
        resources.callback(attempts.close)

        def waiting(names: list[str]) -> None:
            phase[0] = f"waiting for {', '.join(names)}" if names else "connecting"

        if not wait_for(dependencies, stop_requested, waiting):
            return
        # repair retries this stage's failures from before now (their cause may be gone)
        if _until_connected(partial(_record_start, pool, spec.name), stop_requested,
                            settings) is None:  # fmt: skip
            return
        # The broker may die between the check and here: retry, don't exit.
        producer = _until_connected(lambda: make_producer(kafka), stop_requested, settings)
        if producer is None:
            return
        resources.callback(producer.close, 10)
        # a minute more than the longest batch, and never below kafka-python's default
        max_poll_interval_ms = max(300_000, int(spec.max_batch_seconds * 1000) + 60_000)
        consumer = _until_connected(
            lambda: make_consumer(
                kafka,
                spec.group,
                spec.input_topics,
                max_poll_interval_ms=max_poll_interval_ms,
            ),
            stop_requested,
            settings,
        )
        if consumer is None:
            return
        # close(autocommit=False): never commit on the way out, whatever was consumed.
        resources.callback(consumer.close, False)
        backfill = None
        if spec.backfill_topics:
            backfill = _until_connected(
                lambda: make_consumer(
                    kafka, spec.backfill_group, spec.backfill_topics, max_poll_interval_ms
                ),
                stop_requested,
                settings,
            )
            if backfill is None:
                return
            resources.callback(backfill.close, False)
        worker = Worker(
            spec, handler, consumer, producer, kafka, settings, metrics, attempts, activity,
            backfill,
        )  # fmt: skip
        state["worker"] = worker
        if stop_requested.is_set():
            return
        worker.run()


def _record_start(pool: ConnectionPool[psycopg.Connection[Any]], stage: str) -> datetime:
    with pool.connection() as conn:
        return worker_starts.record(conn, stage)


def _until_connected(
    connect: Callable[[], T], stop: threading.Event, settings: WorkerSettings
) -> T | None:
    """``connect()`` retried with backoff on infrastructure errors; None if stopped."""
    attempt = 0
    while not stop.is_set():
        try:
            return connect()
        except Exception as exc:
            if not is_transient(exc):
                raise
            attempt += 1
            delay = backoff_delay(attempt, settings.backoff_initial_s, settings.backoff_max_s)
            log.warning("connecting failed (%r); retry %d in %.1fs", exc, attempt, delay)
            stop.wait(delay)
    return None
