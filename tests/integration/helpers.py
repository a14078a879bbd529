"""What integration tests do over and over: upload, wait for media rows, read topics."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpx
import psycopg
from harness import RunningStack, wait_until_searchable
from kafka import KafkaConsumer
from models_fixtures import PHOTOS, samples_dir
from PIL import Image
from psycopg.rows import dict_row

from glimpse.config import Settings
from glimpse.db.media import media_id
from glimpse.storage import ObjectStore


def glimpse(
    env: dict[str, str], *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """The `glimpse` command as a user runs it (``env``: see ``service_env``)."""
    return subprocess.run(
        [sys.executable, "-m", "glimpse.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def store_of(settings: Settings) -> ObjectStore:
    return ObjectStore(settings.s3)


def connect(settings: Settings) -> psycopg.Connection[dict[str, Any]]:
    assert settings.database.url
    return psycopg.connect(settings.database.url, row_factory=dict_row, autocommit=True)


def row_for(settings: Settings, key: str) -> dict[str, Any] | None:
    with connect(settings) as conn:
        return conn.execute(
            "SELECT * FROM media WHERE id = %(id)s", {"id": media_id(settings.s3.bucket, key)}
        ).fetchone()


def wait_for_rows(
    settings: Settings,
    keys: Iterable[str],
    *,
    until: Callable[[dict[str, Any]], bool] = lambda row: True,
    timeout_s: float = 60,
) -> dict[str, dict[str, Any]]:
    """Rows of ``keys`` once each satisfies ``until``; fails with the missing keys."""
    wanted = {media_id(settings.s3.bucket, k): k for k in keys}
    deadline = time.monotonic() + timeout_s
    rows: dict[str, dict[str, Any]] = {}
    with connect(settings) as conn:
        while True:
            found = conn.execute(
                "SELECT * FROM media WHERE id = ANY(%(ids)s)", {"ids": list(wanted)}
            ).fetchall()
            rows = {r["key"]: r for r in found if until(r)}
            if len(rows) == len(wanted) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    missing = sorted(set(wanted.values()) - rows.keys())
    assert not missing, f"{len(missing)} keys without the expected row, e.g. {missing[:5]}"
    return rows


def read_topic(settings: Settings, topic: str, timeout_s: float = 5) -> list[bytes]:
    """Everything on ``topic`` now (a throwaway consumer, no group, no commits)."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    values: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    idle_polls = 0
    while time.monotonic() < deadline and idle_polls < 5:
        polled = consumer.poll(timeout_ms=300)
        idle_polls = 0 if polled else idle_polls + 1
        for records in polled.values():
            values.extend(r.value for r in records)
    consumer.close()
    return values


def unique_png(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    """A small PNG whose content differs for every seed."""
    image = Image.new("RGB", size, ((seed * 37) % 256, (seed * 91) % 256, (seed // 256) % 256))
    image.putpixel((seed % size[0], 0), (seed % 251, 255 - seed % 256, 7))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


# --- the HTTP API, with scikit-image's sample photos ------------------------------------

SAMPLES = samples_dir()


def api(stack: RunningStack) -> str:
    return f"http://{stack.settings.api.host}:{stack.settings.api.port}"


def admin_key(stack: RunningStack) -> str:
    return (stack.settings.home / "credentials" / "api-key").read_text().strip()


def wait_searchable(stack: RunningStack, keys: list[str], timeout_s: float = 120) -> None:
    ids = [str(media_id(stack.settings.s3.bucket, k)) for k in keys]
    wait_until_searchable(api(stack), ids, timeout_s)


def upload_sample_photos(stack: RunningStack) -> dict[str, str]:
    """The sample photos in the bucket and searchable; their keys by name (a re-upload
    of the same bytes to the same key changes nothing)."""
    store = store_of(stack.settings)
    keys = {}
    for name, file in PHOTOS.items():
        keys[name] = f"samples/{file}"
        store.put(keys[name], (SAMPLES / file).read_bytes(), "image/png")
    wait_searchable(stack, list(keys.values()))
    return keys


def search(stack: RunningStack, q: str, **params: Any) -> dict[str, Any]:
    response = httpx.get(f"{api(stack)}/v1/search", params={"q": q, **params}, timeout=30)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result
