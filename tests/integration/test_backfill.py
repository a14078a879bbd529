"""`glimpse backfill` and `glimpse repair` on a real stack: lost work comes back, a job
interrupted half-way resumes and enqueues nothing twice."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import closing
from typing import Any

import httpx
import pytest
from harness import RunningStack
from helpers import (
    connect,
    glimpse,
    read_topic,
    store_of,
    unique_png,
    wait_for_rows,
    wait_searchable,
)
from prometheus_client.parser import text_string_to_metric_families

from glimpse.backfill import repair
from glimpse.bus import make_producer
from glimpse.config import LimitsSettings, Settings
from glimpse.db.media import media_id
from glimpse.events import parse_object_events
from glimpse.stack.supervisor import service_env

pytestmark = pytest.mark.integration


def put_images(stack: RunningStack, prefix: str, n: int) -> list[str]:
    store = store_of(stack.settings)
    keys = [f"{prefix}{i:03}.png" for i in range(n)]
    for i, key in enumerate(keys):
        store.put(key, unique_png(hash(prefix) % 10_000 * 1000 + i), "image/png")
    return keys


def ids_of(stack: RunningStack, keys: list[str]) -> list[uuid.UUID]:
    return [media_id(stack.settings.s3.bucket, k) for k in keys]


def count(stack: RunningStack, sql: str, keys: list[str]) -> int:
    with connect(stack.settings) as conn:
        row = conn.execute(sql, {"ids": ids_of(stack, keys)}).fetchone()
    assert row is not None
    return int(row["n"])


TEXT_VECTORS = (
    "SELECT count(*) AS n FROM embeddings WHERE kind = 'text' AND media_id = ANY(%(ids)s)"
)
CAPTIONS = "SELECT count(*) AS n FROM captions WHERE media_id = ANY(%(ids)s)"


def wait_count(
    stack: RunningStack, sql: str, keys: list[str], n: int, timeout_s: float = 60
) -> int:
    deadline = time.monotonic() + timeout_s
    while (found := count(stack, sql, keys)) < n and time.monotonic() < deadline:
        time.sleep(0.3)
    return found


def test_vectors_deleted_after_the_fact_come_back_with_backfill_missing(
    stack: RunningStack,
) -> None:
    prefix = f"backfill-embed-{uuid.uuid4().hex[:6]}/"
    keys = put_images(stack, prefix, 3)
    wait_searchable(stack, keys)
    with connect(stack.settings) as conn:
        conn.execute("DELETE FROM embeddings WHERE kind = 'text' AND media_id = ANY(%(ids)s)",
                     {"ids": ids_of(stack, keys)})  # fmt: skip

    env = {**os.environ, **service_env(stack.settings)}
    result = glimpse(env, "backfill", "--stage", "embed", "--missing", "--prefix", prefix)

    assert result.returncode == 0, result.stderr
    assert "completed" in result.stderr
    assert count(stack, TEXT_VECTORS, keys) == 3  # the command waits for completion


def test_repair_announces_again_an_item_whose_caption_never_came(stack: RunningStack) -> None:
    prefix = f"repair-{uuid.uuid4().hex[:6]}/"
    keys = put_images(stack, prefix, 2)
    wait_searchable(stack, keys)
    lost = keys[:1]  # as if its images.accepted message had been lost in a broker crash
    with connect(stack.settings) as conn:
        conn.execute(
            "DELETE FROM captions WHERE media_id = ANY(%(ids)s)", {"ids": ids_of(stack, lost)}
        )
        conn.execute(
            "DELETE FROM embeddings WHERE media_id = ANY(%(ids)s)", {"ids": ids_of(stack, lost)}
        )

    env = {**os.environ, **service_env(stack.settings)}
    result = glimpse(env, "repair", "--older-than", "0s")

    assert result.returncode == 0, result.stderr
    assert "caption" in result.stdout
    assert wait_count(stack, CAPTIONS, lost, 1) == 1
    assert wait_count(stack, TEXT_VECTORS, lost, 1) == 1
    wait_searchable(stack, keys)


# Objects in the bucket that the pipeline has no row for; `make backfill-test-1k` runs
# the 1,000 (GLIMPSE_BACKFILL_TEST_OBJECTS=1000).
BACKFILL_OBJECTS = int(os.environ.get("GLIMPSE_BACKFILL_TEST_OBJECTS", "200"))


def backfill_messages_consumed(settings: Settings) -> float:
    """Messages the ingest worker has taken from its backfill topic since it started."""
    text = httpx.get(f"http://127.0.0.1:{settings.stack.ingest_health_port}/metrics",
                     timeout=10).text  # fmt: skip
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "glimpse_worker_consumed_messages_total"
        and sample.labels.get("topic") == settings.kafka.backfill_objects_topic
    )


def test_ingest_backfill_interrupted_half_way_resumes_and_processes_each_object_once(
    stack: RunningStack,
) -> None:
    s, n = stack.settings, BACKFILL_OBJECTS
    prefix = f"backfill-ingest-{uuid.uuid4().hex[:6]}/"
    keys = put_images(stack, prefix, n)
    wait_for_rows(s, keys, until=lambda r: r["status"] == "accepted", timeout_s=30 + n)
    with connect(s) as conn:  # as if every upload notification had been lost
        conn.execute("DELETE FROM media WHERE id = ANY(%(ids)s)", {"ids": ids_of(stack, keys)})
    env = {**os.environ, **service_env(s)}
    command = ["backfill", "--stage", "ingest", "--missing", "--prefix", prefix]
    consumed_before = backfill_messages_consumed(s)

    slow = subprocess.Popen(  # pages of n / 10 at n / 20 a second: half-way in ~10 s
        [sys.executable, "-m", "glimpse.cli", *command, "--rate", str(max(1, n // 20))],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = wait_for_job(s, prefix, lambda job: job["enqueued"] >= n // 2, 120 + 2 * n)
    except AssertionError:
        slow.kill()
        raise AssertionError(f"the job did not get half-way: {slow.communicate()}") from None
    slow.send_signal(signal.SIGINT)
    _, stderr = slow.communicate(timeout=60)
    interrupted = job_row(s, prefix)
    assert interrupted["id"] == first["id"]
    assert interrupted["status"] == "interrupted", stderr
    assert n // 2 <= interrupted["enqueued"] < n
    assert "run the same command again to resume" in stderr
    status = json.loads(glimpse(env, "status", "--json").stdout)
    assert [(j["id"], j["state"]) for j in status["backfill"] if j["prefix"] == prefix] == [
        (first["id"], "interrupted")
    ]
    with connect(s) as conn:  # what the first half is doing meanwhile
        rows_at_interrupt = conn.execute(
            "SELECT count(*) AS n FROM media WHERE id = ANY(%(ids)s)", {"ids": ids_of(stack, keys)}
        ).fetchone()["n"]  # type: ignore[index]

    resumed = glimpse(env, *command, timeout=300 + 2 * n)

    assert resumed.returncode == 0, resumed.stderr
    done = job_row(s, prefix)
    assert (done["id"], done["status"]) == (first["id"], "done")
    assert done["enqueued"] >= interrupted["enqueued"]  # progress continued, not restarted
    rows = wait_for_rows(s, keys, until=lambda r: r["status"] == "accepted", timeout_s=30 + n)
    assert len(rows) == n >= rows_at_interrupt
    sent = collections.Counter(
        event.key
        for value in read_topic(s, s.kafka.backfill_objects_topic, timeout_s=120)
        for event in parse_object_events(None, value)
        if event.key.startswith(prefix)
    )
    assert set(sent.values()) == {1}, sent.most_common(3)  # nothing enqueued twice
    # the rest came back through the periodic reconcile pass (every 5 min, live topic):
    # on a slow machine it may reach some before the resumed job lists them, which then
    # finds their rows and leaves them
    assert len(sent) == done["enqueued"] >= interrupted["enqueued"]
    # each message taken from the backfill topic once: processed once, none re-delivered
    assert backfill_messages_consumed(s) - consumed_before == len(sent)
    assert wait_count(stack, CAPTIONS, keys, n, timeout_s=30 + n) == n  # then through the pipeline
    assert wait_count(stack, TEXT_VECTORS, keys, n, timeout_s=30 + n) == n

    listed = glimpse(env, "backfill", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    ours = next(j for j in json.loads(listed.stdout) if j["id"] == done["id"])
    assert ours["state"] == "done" and ours["enqueued"] == done["enqueued"]
    assert ours["completed"] == done["enqueued"]  # each of them has its row again


def job_row(settings: Settings, prefix: str) -> dict[str, Any]:
    with connect(settings) as conn:
        row = conn.execute(
            "SELECT * FROM backfill_jobs WHERE prefix = %(p)s ORDER BY id DESC LIMIT 1",
            {"p": prefix},
        ).fetchone()
    assert row is not None
    return row


def wait_for_job(
    settings: Settings, prefix: str, until: Callable[[dict[str, Any]], bool], timeout_s: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            row = job_row(settings, prefix)
        except AssertionError:
            row = None
        if row is not None and until(row):
            return row
        time.sleep(0.1)
    raise AssertionError(f"no job for {prefix} got there in time")


def test_repair_looks_again_at_a_file_a_limit_turned_away_once_the_limit_is_raised(
    stack: RunningStack,
) -> None:
    s = stack.settings
    key = f"limits-{uuid.uuid4().hex[:6]}/big.bin"
    store_of(s).put(key, os.urandom(s.limits.max_bytes + 1024), "application/octet-stream")
    (row,) = wait_for_rows(s, [key], until=lambda r: r["status"] == "rejected").values()
    assert row["reason"] == "too_large"
    assert row["metadata"] == {"rejected_under_limit": f"max_bytes={s.limits.max_bytes}"}

    def repair_with(limits: LimitsSettings) -> dict[str, int]:
        with connect(s) as conn, closing(make_producer(s.kafka)) as producer:
            store = store_of(s)
            return dict(repair(conn, producer, store, s.kafka, 3600, threading.Event(), limits))

    assert repair_with(s.limits)["ingest"] == 0  # the same limit: nothing to look at again
    raised = s.limits.model_copy(update={"max_bytes": 2 * s.limits.max_bytes})
    assert repair_with(raised)["ingest"] >= 1
    sent = [
        event.key
        for value in read_topic(s, s.kafka.backfill_objects_topic)
        for event in parse_object_events(None, value)
    ]
    assert key in sent
    # this stack's ingest still runs with the old limit: it looks, and rejects it again
    wait_for_rows(s, [key], until=lambda r: r["updated_at"] > row["updated_at"])
