"""When each stage's workers last started consuming (``worker_starts``): stage repair
retries a failure once its stage's workers have started again since."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg


def record(conn: psycopg.Connection[Any], stage: str) -> datetime:
    """A worker of ``stage`` starts consuming now; when that is."""
    row = conn.execute(
        "INSERT INTO worker_starts (stage) VALUES (%(stage)s) "
        "ON CONFLICT (stage) DO UPDATE SET started_at = now() RETURNING started_at",
        {"stage": stage},
    ).fetchone()
    assert row is not None
    started: datetime = row["started_at"]
    return started
