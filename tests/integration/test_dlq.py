"""`glimpse dlq` on a real stack: dead letters are listed with their reason, shown on the
media item, and re-driven through their stage once the cause is gone."""

from __future__ import annotations

import json
import os
import time
import uuid

import httpx
import pytest
from harness import RunningStack
from helpers import api, connect, glimpse, store_of, unique_png, wait_for_rows, wait_searchable

from glimpse.db import failures, media
from glimpse.db.media import media_id
from glimpse.stack.supervisor import service_env

pytestmark = pytest.mark.integration


def test_dead_letters_are_listed_shown_and_re_driven_after_the_fix(stack: RunningStack) -> None:
    s = stack.settings
    prefix = f"dlq-{uuid.uuid4().hex[:6]}/"
    uncaptioned, unaccepted = f"{prefix}caption.png", f"{prefix}ingest.png"
    store = store_of(s)
    for seed, key in enumerate((uncaptioned, unaccepted)):
        store.put(key, unique_png(777_000 + seed + hash(prefix) % 1000 * 10), "image/png")
    wait_searchable(stack, [uncaptioned, unaccepted])
    a, b = media_id(s.s3.bucket, uncaptioned), media_id(s.s3.bucket, unaccepted)
    with connect(s) as conn:  # what the workers record when they give up on an item
        conn.execute("DELETE FROM captions WHERE media_id = %(id)s", {"id": a})
        conn.execute("DELETE FROM embeddings WHERE media_id = %(id)s", {"id": a})
        failures.record(conn, a, "caption", "processing_error", "OSError",
                        "image file is truncated", 3, "glimpse.images.accepted/0@12")  # fmt: skip
        origin = "glimpse.objects/1@40"
        media.record_failure(conn, s.s3.bucket, unaccepted, "ingest", "OSError",
                             "decoder crashed", 3, origin, fail_media=True)  # fmt: skip
    env = {**os.environ, **service_env(s)}

    listed = glimpse(env, "dlq", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    ours = {(f["key"], f["stage"], f["reason"]) for f in json.loads(listed.stdout)}
    assert {(uncaptioned, "caption", "processing_error"),
            (unaccepted, "ingest", "processing_error")} <= ours  # fmt: skip
    shown = glimpse(env, "dlq", "show", uncaptioned)
    assert "caption: processing_error after 3 attempt(s)" in shown.stdout, shown.stderr
    assert "image file is truncated" in shown.stdout
    detail = httpx.get(f"{api(stack)}/v1/media/{a}").json()
    assert detail["searchable"] is False
    assert [(f["stage"], f["message"]) for f in detail["failures"]] == [
        ("caption", "image file is truncated")
    ]

    for key in (uncaptioned, unaccepted):
        retried = glimpse(env, "dlq", "retry", "--id", key)
        assert retried.returncode == 0, retried.stderr
        assert "sent again" in retried.stdout

    wait_for_rows(s, [unaccepted], until=lambda r: r["status"] == "accepted")
    wait_searchable(stack, [uncaptioned, unaccepted])
    deadline = time.monotonic() + 30
    while (left := glimpse(env, "dlq", "list", "--retried", "--json").stdout) and any(
        f["media_id"] in (str(a), str(b)) for f in json.loads(left)
    ):
        assert time.monotonic() < deadline, left  # each success clears its failure
        time.sleep(0.5)
    assert httpx.get(f"{api(stack)}/v1/media/{a}").json()["failures"] == []
