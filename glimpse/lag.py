"""Consumer lag: messages on a partition that its consumer group has not committed.

lag = end of the partition - the group's committed offset. The end is the **high
watermark of a Fetch response**, never a ListOffsets "latest" answer: tansu (the
embedded broker) answers ListOffsets with the base offset of one record batch + 1, not
the end of the log (docs/ARCHITECTURE.md, "Consumer lag", has the measurements), while
its Fetch responses carry the right high watermark. On Kafka both agree.

A worker knows the high watermarks of the partitions it owns from its own fetches, so
:class:`WorkerLag` costs no request; ``glimpse.group_lag`` asks the broker for groups
with no worker running.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from kafka import TopicPartition
from prometheus_client import Gauge

from glimpse.bus import InboundMessage


@dataclass(frozen=True, slots=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    end: int  # the high watermark: the offset the next message will get
    committed: int  # where the group resumes (its commit, else the log's start)

    @property
    def lag(self) -> int:
        return max(0, self.end - self.committed)


class PositionedConsumer(Protocol):
    """The part of ``KafkaConsumer`` lag needs."""

    def assignment(self) -> set[TopicPartition]: ...

    def highwater(self, partition: TopicPartition) -> int | None: ...

    def position(self, partition: TopicPartition, timeout_ms: int | None = None) -> int | None: ...


class WorkerLag:
    """Sets a worker's lag gauge (labels service, topic, partition) after each poll.

    The runtime commits only between batches, so what its group has not committed is:
    what the consumer has not handed out yet (high watermark - position) plus the
    messages of the batch in hand. Counting the batch matters: a worker stuck on its
    only message has position = high watermark and would otherwise show no lag.
    """

    def __init__(self, gauge: Gauge, service: str) -> None:
        self._gauge = gauge
        self._service = service
        self._shown: set[TopicPartition] = set()

    def update(self, consumer: PositionedConsumer, in_hand: Iterable[InboundMessage]) -> int | None:
        """Set the gauge for every owned partition whose end is known and return the
        total, or None while no end is known. Partitions given away lose their series."""
        held = Counter(TopicPartition(m.topic, m.partition) for m in in_hand)
        owned = consumer.assignment()
        total: int | None = None
        for tp in owned:
            end = consumer.highwater(tp)
            if end is None:
                continue  # no fetch answered yet for this partition
            try:
                position = consumer.position(tp, timeout_ms=100)
            except Exception:  # lag is a report: never let it stop the loop
                continue
            if position is None:
                continue
            lag = max(0, end - position) + held[tp]
            self._gauge.labels(self._service, tp.topic, str(tp.partition)).set(lag)
            self._shown.add(tp)
            total = (total or 0) + lag
        for tp in self._shown - owned:
            self._gauge.remove(self._service, tp.topic, str(tp.partition))
        self._shown &= owned
        return total
