"""The embedded broker's retention, on the real tansu and its S3 store: batches every
reading group has committed past are deleted, and no reader loses a message."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from harness import RunningStack
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from glimpse.bus import ensure_topics
from glimpse.config import S3Settings
from glimpse.stack import broker
from glimpse.stack.broker_retention import BrokerRetention, batch_offset, records_prefix
from glimpse.stack.credentials import load_or_create
from glimpse.stack.layout import HomeLayout
from glimpse.stack.supervisor import BROKER_BUCKET
from glimpse.storage import ObjectStore

pytestmark = pytest.mark.integration


@pytest.fixture
def broker_store(stack: RunningStack) -> ObjectStore:
    creds = load_or_create(HomeLayout.at(stack.settings.home).s3_credentials)
    return ObjectStore(
        S3Settings(
            endpoint=f"http://127.0.0.1:{stack.settings.stack.broker_store_s3_port}",
            bucket=BROKER_BUCKET,
            access_key=creds.access_key,
            secret_key=creds.secret_key,
        )
    )


@pytest.fixture
def bootstrap(stack: RunningStack) -> str:
    assert stack.settings.kafka.bootstrap
    return stack.settings.kafka.bootstrap


def produce_batches(bootstrap: str, topic: str, count: int, partitions: int = 1) -> None:
    """``count`` messages per partition, each in a record batch (an object) of its own."""
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for i in range(count):
        for partition in range(partitions):
            producer.send(topic, value=f"m{i}".encode(), partition=partition)
        producer.flush()
    producer.close()


def commit(bootstrap: str, group: str, offsets: dict[TopicPartition, int]) -> None:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    consumer.assign(list(offsets))
    consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()})
    consumer.close(autocommit=False)


def read_from(bootstrap: str, group: str | None, topic: str, expected: int) -> list[int]:
    """The offsets a consumer of ``group`` (None: no group, from the earliest) reads."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    offsets: list[int] = []
    deadline = time.monotonic() + 60
    while len(offsets) < expected and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            offsets.extend(r.offset for r in records)
    consumer.close(autocommit=False)
    return sorted(offsets)


def stored_batches(store: ObjectStore, tp: TopicPartition) -> list[int]:
    prefix = records_prefix(broker.CLUSTER_ID, tp)
    found = (batch_offset(prefix, info.key) for info in store.list(prefix))
    return sorted(o for o in found if o is not None)


@pytest.fixture
def topic(bootstrap: str, stack: RunningStack) -> Iterator[str]:
    name = f"retention.{time.time_ns()}"
    ensure_topics(stack.settings.kafka.model_copy(update={"partitions": 2}), [name])
    yield name


def test_batches_both_groups_read_are_deleted_and_each_group_resumes_intact(
    bootstrap: str, broker_store: ObjectStore, topic: str
) -> None:
    p0, p1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    produce_batches(bootstrap, topic, 30, partitions=2)
    commit(bootstrap, "fast", {p0: 20, p1: 30})
    commit(bootstrap, "slow", {p0: 12})  # nothing committed on p1: it starts there anew
    retention = BrokerRetention(bootstrap, broker_store, [topic], broker.CLUSTER_ID, min_step=1)

    done = retention.run_once()

    assert (done.deleted, done.partitions) == (12, 1)
    assert stored_batches(broker_store, p0) == list(range(12, 30))
    assert stored_batches(broker_store, p1) == list(range(30))  # "slow" would read it all
    # each group goes on from its commit: nothing it had not read is gone
    assert read_from(bootstrap, "slow", topic, expected=18 + 30) == sorted(
        [*range(12, 30), *range(30)]
    )
    assert read_from(bootstrap, "fast", topic, expected=10) == list(range(20, 30))
    # a reader from the earliest now starts where the kept batches start
    assert read_from(bootstrap, None, topic, expected=48) == sorted([*range(12, 30), *range(30)])


def test_the_periodic_pass_follows_the_groups_and_leaves_unread_topics_whole(
    bootstrap: str, broker_store: ObjectStore, topic: str, stack: RunningStack
) -> None:
    unread = f"{topic}.unread"
    ensure_topics(stack.settings.kafka.model_copy(update={"partitions": 1}), [unread])
    produce_batches(bootstrap, topic, 10)
    produce_batches(bootstrap, unread, 10)
    tp = TopicPartition(topic, 0)
    retention = BrokerRetention(
        bootstrap, broker_store, [topic, unread], broker.CLUSTER_ID, min_step=1
    )
    retention.every(0.5)
    try:
        commit(bootstrap, "reader", {tp: 4, TopicPartition(topic, 1): 0})
        deadline = time.monotonic() + 30
        while stored_batches(broker_store, tp) != list(range(4, 10)):
            assert time.monotonic() < deadline, stored_batches(broker_store, tp)
            time.sleep(0.5)
        commit(bootstrap, "reader", {tp: 10, TopicPartition(topic, 1): 0})
        while stored_batches(broker_store, tp) != [9]:  # the newest batch stays
            assert time.monotonic() < deadline, stored_batches(broker_store, tp)
            time.sleep(0.5)
    finally:
        retention.stop()
    assert stored_batches(broker_store, TopicPartition(unread, 0)) == list(range(10))
