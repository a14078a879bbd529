"""Retention for the embedded broker: deletes the record batches every group has read.

tansu's S3 storage engine keeps each produced record batch as one object for ever (its
DeleteRecords is not implemented), and every fetch that returns messages lists *all*
of the partition's batch objects to find where to read. So a fetch costs more with
everything the partition ever carried: ~23 ms at 9,000 batches, ~43 ms at 13,000,
and in a 1,500-photo backfill ingest's live fetches alone listed 300 MB of keys
(docs/ARCHITECTURE.md, "What the broker's fetches cost"). Without retention the
embedded pipeline slows down for good after a large import.

A batch is deleted once every consumer group that reads its topic has committed past
its last record. A partition some reading group has no commit on is left whole (that
group would start from the beginning), and so is every partition no group has read
(the dead-letter topic, kept for people). Only the pipeline's own topics are touched.
A group that stopped for good still holds its topics' batches: delete the group.

Deleting never races a reader: a fetch reads only batches at or above the offset it
asks for, and no group asks below its own commit. Real Kafka deployments use the
broker's own retention (``retention.ms``) instead; this runs only in the embedded stack.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from kafka import KafkaAdminClient, TopicPartition

from glimpse.group_lag import committed_offsets
from glimpse.stack import periodic
from glimpse.storage import ObjectStore

log = logging.getLogger(__name__)

BATCH_SUFFIX = ".batch"


@dataclass(frozen=True)
class RetentionPass:
    """What one pass did: batch objects deleted, over how many partitions."""

    deleted: int
    partitions: int


def records_prefix(cluster: str, tp: TopicPartition) -> str:
    """Where tansu keeps a partition's batches, one object per batch named by its
    first offset (tansu's dynostore layout)."""
    return f"clusters/{cluster}/topics/{tp.topic}/partitions/{tp.partition:010d}/records/"


def batch_offset(prefix: str, key: str) -> int | None:
    """The first offset of the batch stored under ``key``; None for any other object."""
    name = key.removeprefix(prefix)
    if name == key or not name.endswith(BATCH_SUFFIX):
        return None
    digits = name.removesuffix(BATCH_SUFFIX)
    return int(digits) if digits.isdigit() else None


def batches_below(first_offsets: Iterable[int], floor: int) -> list[int]:
    """The batches whose every record lies below ``floor``. A batch runs up to the
    next one's first offset, so the newest batch is always kept."""
    ordered = sorted(first_offsets)
    return [first for first, following in itertools.pairwise(ordered) if following <= floor]


def committed_floors(
    committed: Mapping[str, Mapping[TopicPartition, int]], partitions: Iterable[TopicPartition]
) -> dict[TopicPartition, int]:
    """Per partition, the offset no group will read below again: the lowest commit of
    the groups that read its topic (have a commit on any of its partitions). Partitions
    that such a group has no commit on, or that no group reads, are left out."""
    readers: dict[str, list[Mapping[TopicPartition, int]]] = {}
    for offsets in committed.values():
        for topic in {tp.topic for tp in offsets}:
            readers.setdefault(topic, []).append(offsets)
    floors: dict[TopicPartition, int] = {}
    for tp in partitions:
        groups = readers.get(tp.topic)
        if groups and all(tp in offsets for offsets in groups):
            floors[tp] = min(offsets[tp] for offsets in groups)
    return floors


class BrokerRetention:
    """Deletes, on the broker's S3 store, the batches of ``topics`` that every group has
    committed past. ``min_step``: a partition is listed again only once its floor has
    moved this many offsets (listing it costs as much as a fetch)."""

    def __init__(
        self,
        bootstrap: str,
        store: ObjectStore,
        topics: Sequence[str],
        cluster: str,
        min_step: int = 100,
    ) -> None:
        self.bootstrap = bootstrap
        self.store = store
        self.topics = list(topics)
        self.cluster = cluster
        self.min_step = min_step
        # the latest passes only: `glimpse up` runs one a minute for as long as it runs
        self.passes: deque[RetentionPass] = deque(maxlen=1000)
        self._trimmed_at: dict[TopicPartition, int] = {}
        self._stopping = threading.Event()

    def run_once(self) -> RetentionPass:
        floors = self._floors()
        deleted = partitions = 0
        for tp, floor in sorted(floors.items()):
            if floor - self._trimmed_at.get(tp, 0) < self.min_step:
                continue
            prefix = records_prefix(self.cluster, tp)
            offsets = {
                offset: info.key
                for info in self.store.list(prefix)
                if (offset := batch_offset(prefix, info.key)) is not None
            }
            doomed = [offsets[o] for o in batches_below(offsets, floor)]
            self.store.delete_many(doomed)
            self._trimmed_at[tp] = floor
            deleted += len(doomed)
            partitions += bool(doomed)
        done = RetentionPass(deleted, partitions)
        if deleted:
            log.info("broker retention: deleted %d batches read by every group "
                     "(%d partitions)", deleted, partitions)  # fmt: skip
        self.passes.append(done)
        return done

    def _floors(self) -> dict[TopicPartition, int]:
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=10_000)
        try:
            groups = [str(g["group_id"]) for g in admin.list_groups()]
            committed = {group: committed_offsets(admin, group) for group in groups}
            described = admin.describe_topics(self.topics)
        finally:
            admin.close()
        partitions = [
            TopicPartition(t["name"], partition)
            for t in described
            if t["name"] in self.topics
            for partition in range(len(t["partitions"]))
        ]
        return committed_floors(committed, partitions)

    def every(self, interval_s: float) -> None:
        """In the background: a pass every ``interval_s`` (0: never)."""
        periodic.every("broker-retention", interval_s, self.run_once, self._stopping)

    def stop(self) -> None:
        self._stopping.set()
