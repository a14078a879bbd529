"""Deletes recorded voice queries, clip and row, once their retention period is over."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import psycopg
from fastapi.concurrency import run_in_threadpool
from psycopg_pool import ConnectionPool

from glimpse.config import VoiceSettings
from glimpse.db import voice_queries
from glimpse.storage import ObjectStore

log = logging.getLogger(__name__)


def sweep_voice_queries(
    pool: ConnectionPool[psycopg.Connection[Any]], store: ObjectStore, older_than: timedelta
) -> int:
    """Delete queries older than ``older_than``, clip first, then row; returns how many."""
    deleted = 0
    while True:
        with pool.connection() as conn:
            expired = voice_queries.expired(conn, older_than)
        for row in expired:
            store.delete(row["clip_key"])  # S3 deletes of a missing key succeed
            with pool.connection() as conn:
                voice_queries.delete(conn, row["id"])
            deleted += 1
        if not expired:
            return deleted


async def sweep_forever(
    pool: ConnectionPool[psycopg.Connection[Any]], store: ObjectStore, voice: VoiceSettings
) -> None:
    """Sweep now and every ``voice.sweep_interval_s``; an error waits for the next round."""
    older_than = timedelta(hours=voice.retention_hours)
    while True:
        try:
            deleted = await run_in_threadpool(sweep_voice_queries, pool, store, older_than)
            if deleted:
                log.info("deleted %d expired voice queries", deleted)
        except Exception:
            log.exception("voice query sweep failed; retrying next round")
        await asyncio.sleep(voice.sweep_interval_s)
