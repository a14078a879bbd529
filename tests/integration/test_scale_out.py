"""Scale-out on the embedded stack: two caption processes in one consumer group share the
images topic's partitions, and together caption every upload once.

One stack of its own (``stack.replicas.caption = 2``): the session stack runs one of each.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import httpx
import pytest
from harness import RunningStack, private_settings, running_stack
from helpers import connect, glimpse, store_of, unique_png, wait_searchable
from prometheus_client.parser import text_string_to_metric_families

from glimpse.db.media import media_id
from glimpse.models.labels import MODEL_ID
from glimpse.stack.ports import WorkerReplica, worker_replicas
from glimpse.stack.supervisor import service_env

pytestmark = pytest.mark.integration

UPLOADS = 24


@pytest.fixture(scope="module")
def two_captioners(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    settings = private_settings(tmp_path_factory.mktemp("scale-out") / "home")
    settings.stack.replicas.caption = 2
    with running_stack(settings) as running:
        yield running


def samples(port: int, name: str) -> list[tuple[dict[str, str], float]]:
    """One metric's samples (labels, value) from a worker's /metrics."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def owned_partitions(replica: WorkerReplica, topic: str) -> set[int]:
    """The partitions of ``topic`` a replica owns now (it exports lag for exactly those)."""
    lag = samples(replica.port, "glimpse_consumer_lag_messages")
    return {int(labels["partition"]) for labels, _ in lag if labels["topic"] == topic}


def total(replica: WorkerReplica, name: str, **match: str) -> float:
    return sum(
        value
        for labels, value in samples(replica.port, name)
        if all(labels.get(k) == v for k, v in match.items())
    )


def wait_for_split(
    replicas: list[WorkerReplica], topic: str, partitions: int, timeout_s: float = 180
) -> list[set[int]]:
    """Until the replicas own disjoint, non-empty shares covering every partition (the
    group has settled), which is then returned."""
    deadline = time.monotonic() + timeout_s
    while True:
        shares = [owned_partitions(r, topic) for r in replicas]
        settled = all(shares) and sum(map(len, shares)) == partitions
        if settled and set().union(*shares) == set(range(partitions)):
            return shares
        assert time.monotonic() < deadline, f"the group never split {topic}: {shares}"
        time.sleep(0.5)


def test_two_caption_replicas_share_the_work_and_caption_each_upload_once(
    two_captioners: RunningStack,
) -> None:
    s = two_captioners.settings
    topic = s.kafka.images_accepted_topic
    captioners = [r for r in worker_replicas(s.stack) if r.stage == "caption"]
    assert [r.name for r in captioners] == ["caption", "caption-2"]
    shares = wait_for_split(captioners, topic, s.kafka.partitions)

    store = store_of(s)
    keys = [f"scale-out/{i:02d}.png" for i in range(UPLOADS)]
    for i, key in enumerate(keys):
        store.put(key, unique_png(7000 + i), "image/png")
    wait_searchable(two_captioners, keys, timeout_s=300)

    # No rebalance during the run: what each consumed is what it owned all along.
    assert [owned_partitions(r, topic) for r in captioners] == shares
    consumed = [total(r, "glimpse_worker_consumed_messages_total", topic=topic) for r in captioners]
    model = {"model": MODEL_ID}
    predicted = [total(r, "glimpse_model_inference_items_total", **model) for r in captioners]
    assert all(n > 0 for n in consumed), f"a replica took no work: {consumed}"
    # Each upload was announced once and predicted once, by one of the two.
    assert sum(consumed) == UPLOADS
    assert sum(predicted) == UPLOADS
    with connect(s) as conn:
        rows = conn.execute(
            "SELECT media_id, count(*) AS n FROM captions WHERE media_id = ANY(%(ids)s) "
            "GROUP BY media_id",
            {"ids": [media_id(s.s3.bucket, k) for k in keys]},
        ).fetchall()
    assert len(rows) == UPLOADS and {r["n"] for r in rows} == {1}


def test_status_shows_every_replica_and_a_stage_as_their_sum(
    two_captioners: RunningStack,
) -> None:
    s = two_captioners.settings
    env = {**os.environ, **service_env(s)}
    report = json.loads(glimpse(env, "status", "--json").stdout)
    assert report["health"]["caption"]["ok"] and report["health"]["caption-2"]["ok"]
    # /status counts messages finished in the last minute: ask the replicas, then the
    # stage, and again, until nothing moved in between (the uploads above are done)
    for _ in range(10):
        per_replica = [
            httpx.get(f"http://127.0.0.1:{r.port}/status", timeout=5).json()
            for r in worker_replicas(s.stack)
            if r.stage == "caption"
        ]
        stage = json.loads(glimpse(env, "status", "--json").stdout)["stages"]["caption"]
        if stage["messages_per_minute"] == sum(r["messages_per_minute"] for r in per_replica):
            return
    pytest.fail(f"caption stage {stage} is not the sum of its replicas {per_replica}")
