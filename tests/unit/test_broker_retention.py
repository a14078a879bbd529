"""Which of the embedded broker's record batches retention may delete."""

from __future__ import annotations

from kafka import TopicPartition

from glimpse.stack.broker_retention import (
    batch_offset,
    batches_below,
    committed_floors,
    records_prefix,
)

OBJECTS = [TopicPartition("glimpse.objects", p) for p in range(3)]
DLQ = TopicPartition("glimpse.dlq", 0)


def test_a_batch_goes_once_the_next_one_starts_at_or_below_the_floor() -> None:
    # batches of 3, 1 and 4 records, then one of unknown length (the newest)
    assert batches_below([0, 3, 4, 8, 20], floor=8) == [0, 3, 4]
    assert batches_below([8, 0, 4, 3], floor=7) == [0, 3]  # 4-7 holds offset 7: kept
    assert batches_below([0, 3], floor=1000) == [0]  # the newest batch is always kept
    assert batches_below([], floor=10) == []


def test_only_batch_objects_of_the_partition_are_read_as_offsets() -> None:
    prefix = records_prefix("tansu_cluster", TopicPartition("glimpse.objects", 2))
    assert prefix == "clusters/tansu_cluster/topics/glimpse.objects/partitions/0000000002/records/"
    assert batch_offset(prefix, prefix + "00000000000000001126.batch") == 1126
    assert batch_offset(prefix, prefix + "00000000000000001126.json") is None
    assert batch_offset(prefix, "clusters/tansu_cluster/watermark.json") is None


def test_the_floor_is_the_slowest_reading_group() -> None:
    committed = {
        "glimpse-ingest": {OBJECTS[0]: 40, OBJECTS[1]: 12, OBJECTS[2]: 7},
        "audit": {OBJECTS[0]: 25, OBJECTS[1]: 30, OBJECTS[2]: 9},
    }
    assert committed_floors(committed, [*OBJECTS, DLQ]) == {
        OBJECTS[0]: 25,
        OBJECTS[1]: 12,
        OBJECTS[2]: 7,
    }  # the dead letters, which no group reads, are kept whole


def test_a_partition_a_reading_group_never_committed_on_is_kept_whole() -> None:
    # "new" reads the topic but has nothing committed on partition 2 yet: it would
    # start there from the beginning
    committed = {
        "glimpse-ingest": {OBJECTS[0]: 40, OBJECTS[1]: 12, OBJECTS[2]: 7},
        "new": {OBJECTS[0]: 3, OBJECTS[1]: 5},
    }
    assert committed_floors(committed, OBJECTS) == {OBJECTS[0]: 3, OBJECTS[1]: 5}


def test_groups_of_other_topics_do_not_hold_a_topic_back() -> None:
    committed = {
        "glimpse-ingest": {OBJECTS[0]: 40},
        "glimpse-dlq-reader": {DLQ: 2},
    }
    assert committed_floors(committed, [OBJECTS[0], DLQ]) == {OBJECTS[0]: 40, DLQ: 2}
