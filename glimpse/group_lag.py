"""Consumer lag read from the broker, for every group whether a worker runs or not.

Committed offsets come from OffsetFetch (admin client). The end of each partition is
the high watermark of a Fetch response: a throwaway consumer (no group) fetches a few
bytes from the newest committed offset of each partition. ListOffsets "latest" is not
used: tansu answers it wrongly (see glimpse/lag.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from glimpse.lag import PartitionLag

log = logging.getLogger(__name__)


Discover = Callable[[Iterable[str]], Mapping[str, Sequence[str]]]


def read_group_lag(
    bootstrap: str,
    groups: Mapping[str, Sequence[str]],
    timeout_s: float = 10.0,
    discover: Discover | None = None,
) -> list[PartitionLag]:
    """The lag of each ``group`` on every partition of its topics; with ``discover``,
    also of the groups it picks (with their topics) from those the broker lists.

    Raises ``TimeoutError`` if the broker gives no high watermark for some partition
    within ``timeout_s``, and the client's errors if the broker does not answer.
    """
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    try:
        if discover is not None:
            listed = [str(g["group_id"]) for g in admin.list_groups()]
            groups = {**discover(listed), **groups}
        committed = {group: committed_offsets(admin, group) for group in groups}
    finally:
        admin.close()
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        # the high watermark comes with any answer: read as little as the broker allows
        max_partition_fetch_bytes=1024,
        fetch_max_bytes=64 * 1024,
        request_timeout_ms=max(int(timeout_s * 1000), 1000),
    )
    try:
        partitions = _partitions(consumer, {t for topics in groups.values() for t in topics})
        starts = consumer.beginning_offsets(list(partitions)) if partitions else {}
        resume = {
            group: {
                tp: committed[group].get(tp, starts[tp])
                for tp in partitions
                if tp.topic in groups[group]
            }
            for group in groups
        }
        ends = _high_watermarks(consumer, resume, timeout_s)
    finally:
        consumer.close()
    return [
        PartitionLag(group, tp.topic, tp.partition, ends[tp], offset)
        for group, offsets in resume.items()
        for tp, offset in sorted(offsets.items())
    ]


def committed_offsets(admin: KafkaAdminClient, group: str) -> dict[TopicPartition, int]:
    """``group``'s committed offset on each partition it has committed on."""
    answer: Any = admin.list_group_offsets({group: None})
    offsets: Mapping[TopicPartition, Any] = answer.get(group, {})
    # -1: the group has no commit on that partition
    return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


def _partitions(consumer: KafkaConsumer, topics: set[str]) -> set[TopicPartition]:
    found: set[TopicPartition] = set()
    for topic in topics:
        for partition in consumer.partitions_for_topic(topic) or ():
            found.add(TopicPartition(topic, partition))
    return found


def _high_watermarks(
    consumer: KafkaConsumer,
    resume: Mapping[str, Mapping[TopicPartition, int]],
    timeout_s: float,
) -> dict[TopicPartition, int]:
    """Fetch once from each partition (from its newest resume point, so little comes
    back) and keep the high watermark of the answer."""
    nearest: dict[TopicPartition, int] = {}
    for offsets in resume.values():
        for tp, offset in offsets.items():
            nearest[tp] = max(nearest.get(tp, offset), offset)
    if not nearest:
        return {}
    consumer.assign(list(nearest))
    for tp, offset in nearest.items():
        consumer.seek(tp, offset)
    deadline = time.monotonic() + timeout_s
    ends: dict[TopicPartition, int] = {}
    while True:
        for tp in nearest.keys() - ends.keys():
            end = consumer.highwater(tp)
            if end is not None:
                ends[tp] = end
        if len(ends) == len(nearest):
            return ends
        if time.monotonic() >= deadline:
            missing = sorted(f"{tp.topic}/{tp.partition}" for tp in nearest.keys() - ends.keys())
            raise TimeoutError(f"no high watermark from the broker for {', '.join(missing)}")
        consumer.poll(timeout_ms=200, max_records=1)


def backlog(bootstrap: str, group: str, topics: Sequence[str], timeout_s: float = 5.0) -> int:
    """The messages waiting on ``topics`` for ``group``, over all partitions."""
    return sum(p.lag for p in read_group_lag(bootstrap, {group: topics}, timeout_s))
