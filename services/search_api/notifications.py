"""Wake requests that wait for a voice query's transcript: one LISTEN per API process.

The transcribe service finishes a query row and NOTIFYs ``glimpse_voice_queries`` in
the same transaction. One background task holds a LISTEN connection and resolves the
events of the requests waiting for that id: no polling. While the connection is
being re-established every waiter is woken so it re-reads its row itself (and, still
pending, waits again: a wake-up is a hint to look, not an answer).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from glimpse.db.voice_queries import CHANNEL
from glimpse.errors import backoff_delay

log = logging.getLogger(__name__)


class QueryNotifications:
    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._waiters: dict[uuid.UUID, set[asyncio.Event]] = {}
        self.listening = asyncio.Event()

    @contextmanager
    def expect(self, query_id: uuid.UUID) -> Iterator[asyncio.Event]:
        """An event set when ``query_id`` may be finished (clear it before waiting
        again). Register it before asking for the work, so the notification cannot
        come first."""
        event = asyncio.Event()
        self._waiters.setdefault(query_id, set()).add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(query_id, set())
            waiters.discard(event)
            if not waiters:
                self._waiters.pop(query_id, None)

    async def run(self) -> None:
        """Listen until cancelled, reconnecting with backoff when Postgres goes away."""
        attempt = 0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True, application_name="glimpse-search-api-listen"
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    attempt = 0
                    self._wake_all()  # anything finished while we were not listening
                    async for note in conn.notifies():
                        self._wake(note.payload)
            except psycopg.Error as exc:  # connection lost, server restarting, …
                self.listening.clear()
                self._wake_all()
                attempt += 1
                delay = backoff_delay(attempt, 0.2, 10.0)
                log.warning("LISTEN %s lost (%s); reconnecting in %.1f s", CHANNEL, exc, delay)
                await asyncio.sleep(delay)

    def _wake(self, payload: str) -> None:
        try:
            query_id = uuid.UUID(payload)
        except ValueError:
            return
        for event in self._waiters.get(query_id, ()):
            event.set()

    def _wake_all(self) -> None:
        for events in self._waiters.values():
            for event in events:
                event.set()
