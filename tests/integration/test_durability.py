"""Nothing is lost, nothing is done twice: crashes, broker restarts, full restarts.

Each test runs its own embedded stack, because each one breaks it on purpose.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from harness import RunningStack, private_settings, running_stack
from helpers import connect, read_topic, store_of, unique_png, wait_for_rows
from prometheus_client.parser import text_string_to_metric_families

from glimpse.bus import OutboundMessage, make_producer, send_all
from glimpse.config import Settings
from glimpse.events import ObjectAction, ObjectEvent, parse_object_events, s3_event_json
from glimpse.stack import seaweed
from glimpse.stack.credentials import load_or_create
from glimpse.stack.layout import HomeLayout
from glimpse.stack.process import ManagedProcess

pytestmark = pytest.mark.integration


@pytest.fixture
def own_stack(tmp_path: Path) -> Iterator[RunningStack]:
    settings = private_settings(tmp_path / "home")
    # These tests kill workers at random moments on purpose: an item caught in flight
    # by three kills would rightly be dead-lettered as crashed_worker.
    settings.worker.max_crashes = 10
    with running_stack(settings) as running:
        yield running


def worker_messages(running: RunningStack, worker: str) -> dict[str, float]:
    """Messages a worker's current process finished, by outcome (its /metrics)."""
    port = getattr(running.settings.stack, f"{worker}_health_port")
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    done: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "glimpse_worker_messages_total":
                outcome = sample.labels["outcome"]
                done[outcome] = done.get(outcome, 0.0) + sample.value
    return done


def messages_done(running: RunningStack, worker: str, outcome: str = "ok") -> float:
    return worker_messages(running, worker).get(outcome, 0.0)


def ingest_messages_done(running: RunningStack) -> float:
    """Messages the (current) ingest process did work for (the store's readiness probe
    and folder events are "skipped" and don't count)."""
    done = worker_messages(running, "ingest")
    return sum(count for outcome, count in done.items() if outcome != "skipped")


def replay(settings: Settings, prefix: str) -> None:
    """Send a create event again for every object under ``prefix``."""
    store = store_of(settings)
    producer = make_producer(settings.kafka)
    try:
        events = [
            ObjectEvent(ObjectAction.CREATED, store.bucket, o.key, o.size, o.etag, None, "replay")
            for o in store.list(prefix)
        ]
        topic = settings.kafka.objects_topic
        send_all(
            producer,
            [OutboundMessage(topic, e.key.encode(), s3_event_json([e])) for e in events],
            60,
        )
    finally:
        producer.close(10)


def wait_until_skipped(
    running: RunningStack, worker: str, skipped_before: float, extra: int, timeout_s: float = 120
) -> None:
    """Until ``worker`` skipped ``extra`` more messages (work already done) than before."""
    deadline = time.monotonic() + timeout_s
    while messages_done(running, worker, "skipped") - skipped_before < extra:
        assert time.monotonic() < deadline, f"{worker} did not see the replayed messages"
        time.sleep(0.5)


def results_of(settings: Settings, ids: list[object]) -> dict[str, list[tuple[object, ...]]]:
    """Every stored result of ``ids`` with its timestamps."""
    with connect(settings) as conn:
        return {
            table: [
                tuple(r.values())
                for r in conn.execute(
                    f"SELECT media_id, model, created_at{', kind' if table == 'embeddings' else ''}"
                    f" FROM {table} WHERE media_id = ANY(%(ids)s) ORDER BY 1, 2",
                    {"ids": ids},
                ).fetchall()
            ]
            for table in ("captions", "embeddings")
        } | {
            "media": [
                tuple(r.values())
                for r in conn.execute(
                    "SELECT id, created_at, updated_at FROM media WHERE id = ANY(%(ids)s) "
                    "ORDER BY 1",
                    {"ids": ids},
                ).fetchall()
            ]
        }


def test_no_loss_while_ingest_is_killed_and_the_broker_restarts(
    own_stack: RunningStack,
) -> None:
    s = own_stack.settings
    store = store_of(s)
    originals = {f"load/{i:03}.png": unique_png(i) for i in range(460)}
    copies = {f"load/copy-{i:02}.png": unique_png(i) for i in range(20)}
    bad = {f"load/bad-{i:02}.jpg": b"not an image at all, just text " * (i + 1) for i in range(20)}
    uploads = {**originals, **copies, **bad}  # 500 objects
    ingest = own_stack.stack.part("ingest")

    kills: list[int] = []

    def kill_ingest_repeatedly() -> None:
        while len(kills) < 3:
            time.sleep(1.5)
            if ingest.process.is_running():
                kills.append(ingest.process.pid or 0)
                ingest.process.kill()  # kill -9: no chance to finish or commit anything

    killer = threading.Thread(target=kill_ingest_repeatedly)
    killer.start()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda kv: store.put(kv[0], kv[1], "image/png"), originals.items()))
    killer.join()
    # The copies go up after their originals are recorded, so which one is the
    # original is well defined.
    wait_for_rows(s, originals, timeout_s=240)

    # Restart the broker once, uploading while it is down: SeaweedFS may drop those
    # notifications, the reconcile pass after the restart must find the objects.
    own_stack.stack.part("broker").process.kill()
    for key, data in {**copies, **bad}.items():
        store.put(key, data, "image/png")

    rows = wait_for_rows(s, uploads, timeout_s=240)

    assert {rows[k]["status"] for k in originals} == {"accepted"}
    assert {rows[k]["status"] for k in copies} == {"duplicate"}
    assert {rows[k]["status"] for k in bad} == {"rejected"}
    assert len(set(kills)) == 3  # three different ingest processes died mid-work
    assert own_stack.stack.part("broker").restarts == 1
    # Whether the notifier dropped some of the uploads made while the broker was down
    # (reconcile then re-sent them) or its retries got them through depends on how long
    # the restart took on a loaded machine: either way, every row above is right.
    # (test_objects_stored_while_glimpse_was_down_are_found_at_startup proves reconcile)
    # The pass after the restart runs in the background and may end after the rows are
    # all there (when the notifier's retries got every upload through by itself).
    deadline = time.monotonic() + 60
    while len(own_stack.stack.reconcile_reports) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(own_stack.stack.reconcile_reports) >= 2  # a pass ran after the restart


def test_full_restart_keeps_data_and_offsets_and_reprocesses_nothing(tmp_path: Path) -> None:
    settings = private_settings(tmp_path / "home")
    first = RunningStack(settings)
    try:
        keys = {f"keep/{i}.png": unique_png(20_000 + i) for i in range(20)}
        for key, data in keys.items():
            store_of(first.settings).put(key, data, "image/png")
        before = wait_for_rows(first.settings, keys)
    finally:
        first.close()

    second = RunningStack(settings)
    try:
        s = second.settings
        time.sleep(3)  # time for anything wrongly re-delivered to show up
        after = wait_for_rows(s, keys)
        assert {k: r["updated_at"] for k, r in after.items()} == {
            k: r["updated_at"] for k, r in before.items()
        }
        assert ingest_messages_done(second) == 0
        assert second.stack.reconcile_reports[0].created == 0
        assert store_of(s).read("keep/0.png", 10_000) == keys["keep/0.png"]
        # and the pipeline still works
        store_of(s).put("keep/new.png", unique_png(29_999), "image/png")
        assert wait_for_rows(s, ["keep/new.png"])["keep/new.png"]["status"] == "accepted"
        assert ingest_messages_done(second) == 1
    finally:
        second.close()


def test_objects_stored_while_glimpse_was_down_are_found_at_startup(tmp_path: Path) -> None:
    settings = private_settings(tmp_path / "home")
    RunningStack(settings).close()  # create the home: credentials, buckets, schema

    # The media store alone, without its Kafka notifier (as if the broker were down):
    # these uploads produce no events at all.
    layout = HomeLayout.at(settings.home)
    ports = settings.stack
    creds = load_or_create(layout.s3_credentials)
    spec = seaweed.weed_spec(
        "s3-media-alone",
        layout.media_store,
        seaweed.media_store_ports(ports),
        layout.s3_identities,
        settings.s3.bucket,
        tmp_path / "alone.log",
        ports.weed_memory_limit,
    )
    spec.cwd = tmp_path  # no notification.toml here
    alone = ManagedProcess(spec)
    alone.start()
    endpoint = f"http://127.0.0.1:{ports.s3_port}"
    try:
        seaweed.wait_ready(endpoint, creds, settings.s3.bucket)
        client = seaweed.s3_client(endpoint, creds)
        for i in range(5):
            client.put_object(
                Bucket=settings.s3.bucket, Key=f"offline/{i}.png", Body=unique_png(40_000 + i)
            )
    finally:
        alone.stop()

    running = RunningStack(settings)
    try:
        assert running.stack.reconcile_reports[0].created == 5
        rows = wait_for_rows(running.settings, [f"offline/{i}.png" for i in range(5)])
        assert {r["status"] for r in rows.values()} == {"accepted"}
        # on ingest's backfill topic: a whole bucket found at once must not hold up live uploads
        resent = read_topic(running.settings, running.settings.kafka.backfill_objects_topic)
        keys = {e.key for value in resent for e in parse_object_events(None, value)}
        assert keys == {f"offline/{i}.png" for i in range(5)}
    finally:
        running.close()


def test_caption_and_embed_killed_mid_batch_lose_nothing(own_stack: RunningStack) -> None:
    s = own_stack.settings
    store = store_of(s)
    uploads = {f"crash/{i:03}.png": unique_png(50_000 + i, size=(96, 72)) for i in range(300)}
    kills: list[str] = []

    def kill_workers() -> None:
        for name in ("caption", "embed", "caption", "embed"):
            part = own_stack.stack.part(name)
            deadline = time.monotonic() + 60
            while not part.process.is_running() and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(1.0)
            part.process.kill()
            kills.append(name)

    killer = threading.Thread(target=kill_workers)
    killer.start()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda kv: store.put(kv[0], kv[1], "image/png"), uploads.items()))
    killer.join()

    rows = wait_for_rows(s, uploads, until=lambda r: r["status"] == "accepted", timeout_s=240)
    ids = [r["id"] for r in rows.values()]
    deadline = time.monotonic() + 240
    with connect(s) as conn:
        while time.monotonic() < deadline:
            counts = conn.execute(
                "SELECT (SELECT count(*) FROM captions WHERE media_id = ANY(%(ids)s)) AS captions,"
                " (SELECT count(*) FROM embeddings WHERE media_id = ANY(%(ids)s)"
                "  AND kind = 'text') AS text_vectors,"
                " (SELECT count(*) FROM embeddings WHERE media_id = ANY(%(ids)s)"
                "  AND kind = 'visual') AS visual_vectors",
                {"ids": ids},
            ).fetchone()
            if counts == {"captions": 300, "text_vectors": 300, "visual_vectors": 300}:
                break
            time.sleep(0.5)
    assert counts == {"captions": 300, "text_vectors": 300, "visual_vectors": 300}
    assert kills == ["caption", "embed", "caption", "embed"]

    # Every event delivered again (as after a crash before a commit): nothing is computed
    # twice and no stored result changes.
    before = results_of(s, ids)
    models_before = {w: messages_done(own_stack, w) for w in ("caption", "embed")}
    skipped_before = messages_done(own_stack, "embed", "skipped")
    replay(s, "crash/")
    wait_until_skipped(own_stack, "embed", skipped_before, extra=300)
    assert {w: messages_done(own_stack, w) for w in ("caption", "embed")} == models_before
    assert results_of(s, ids) == before
