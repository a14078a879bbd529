"""Consumer lag on the embedded stack's own broker (tansu with its S3 storage engine,
where ListOffsets "latest" is wrong): the broker-side reading, the lag exporter that
`glimpse up` runs, and the workers' own gauges."""

from __future__ import annotations

import time

import bus_helpers
import httpx
import pytest
from harness import RunningStack
from helpers import store_of, unique_png, wait_searchable
from prometheus_client.parser import text_string_to_metric_families

from glimpse.bus import ensure_topics
from glimpse.group_lag import read_group_lag
from glimpse.stages import consumer_groups

pytestmark = pytest.mark.integration


def samples(url: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    text = httpx.get(url, timeout=10).text
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


def test_lag_of_a_group_with_no_consumer_counts_every_message(stack: RunningStack) -> None:
    kafka = stack.settings.kafka.model_copy(update={"partitions": 1})
    assert kafka.bootstrap
    topic = f"lagcheck.{time.time_ns()}"
    ensure_topics(kafka, [topic])
    for round_size in (5, 12, 1):  # several record batches, as tansu stores them
        bus_helpers.produce(kafka, topic, [b"m"] * round_size)
    (partition,) = read_group_lag(kafka.bootstrap, {"nobody-reads-this": [topic]})
    assert (partition.end, partition.committed, partition.lag) == (18, 0, 18)
    assert len(bus_helpers.read_all(kafka, topic, expected=18)) == 18


def test_the_stack_exports_every_stage_groups_lag_and_workers_their_own(
    stack: RunningStack,
) -> None:
    settings = stack.settings
    exporter = f"http://127.0.0.1:{settings.stack.lag_exporter_port}/metrics"
    groups = set(consumer_groups(settings.kafka))  # backfill groups too
    deadline = time.monotonic() + 60
    while True:  # the workers catch up with whatever other tests left
        lags = samples(exporter, "glimpse_consumer_group_lag_messages")
        if {dict(k)["group"] for k in lags} == groups and not any(lags.values()):
            break
        assert time.monotonic() < deadline, lags
        time.sleep(1)
    assert samples(exporter, "glimpse_lag_exporter_up") == {(): 1.0}
    assert len(lags) == sum(
        len(t) * settings.kafka.partitions for t in consumer_groups(settings.kafka).values()
    )

    ingest = f"http://127.0.0.1:{settings.stack.ingest_health_port}/metrics"
    own = samples(ingest, "glimpse_consumer_lag_messages")
    assert own, "the ingest worker exports the lag of the partitions it owns"
    topics = {dict(k)["topic"] for k in own}
    assert settings.kafka.objects_topic in topics
    assert topics <= {settings.kafka.objects_topic, settings.kafka.backfill_objects_topic}
    status = httpx.get(
        f"http://127.0.0.1:{settings.stack.ingest_health_port}/status", timeout=10
    ).json()
    assert set(status) == {"messages_per_minute", "lag", "last_error"}


def test_an_upload_made_searchable_is_timed_once(stack: RunningStack) -> None:
    settings = stack.settings
    embed = f"http://127.0.0.1:{settings.stack.embed_health_port}/metrics"
    count = "glimpse_upload_to_searchable_seconds_count"
    before = samples(embed, count).get((("kind", "image"),), 0.0)
    key = f"e2e/{time.time_ns()}.png"
    store_of(settings).put(key, unique_png(time.time_ns() % 100_000), "image/png")
    wait_searchable(stack, [key])
    deadline = time.monotonic() + 30
    while samples(embed, count).get((("kind", "image"),), 0.0) < before + 1:
        assert time.monotonic() < deadline, "no upload-to-searchable observation"
        time.sleep(0.5)
    total = samples(embed, "glimpse_upload_to_searchable_seconds_sum")[(("kind", "image"),)]
    assert total > 0
    # process metrics on every service registry
    assert samples(embed, "process_start_time_seconds")
