"""SQL for ``delivery_attempts``: which messages a worker started and never finished.

Every statement runs in its own committed transaction, so a count survives the
process dying right after it. Any failure here is the log's, never the item's: it is
raised as ``TransientError`` (the worker waits), so an item is not dead-lettered
because its bookkeeping failed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from glimpse.bus import InboundMessage
from glimpse.errors import TransientError

_POSITIONS = "unnest(%(topics)s::text[], %(partitions)s::int[], %(offsets)s::bigint[])"

# A death is redelivered within minutes (the restart, the group's rebalance). A row far
# older is no evidence about the message at that position now: a topic deleted and made
# again (a wiped broker beside a kept database) starts its offsets over, and counting an
# old crash against a new message would dead-letter it unread.
_CRASHES = f"""
SELECT m.topic, m.partition, m."offset", a.attempts
FROM {_POSITIONS} AS m (topic, partition, "offset")
JOIN delivery_attempts a USING (topic, partition, "offset")
WHERE a.consumer_group = %(group)s
  AND a.last_started_at > now() - make_interval(secs => %(remembered_s)s)
"""

_STARTED = f"""
INSERT INTO delivery_attempts (consumer_group, topic, partition, "offset")
SELECT %(group)s, m.topic, m.partition, m."offset"
FROM {_POSITIONS} AS m (topic, partition, "offset")
ON CONFLICT (consumer_group, topic, partition, "offset") DO UPDATE
SET attempts = delivery_attempts.attempts + 1, last_started_at = now()
"""

_FINISHED = f"""
DELETE FROM delivery_attempts a
USING {_POSITIONS} AS m (topic, partition, "offset")
WHERE a.consumer_group = %(group)s
  AND (a.topic, a.partition, a."offset") = (m.topic, m.partition, m."offset")
"""

_COMMITTED = f"""
DELETE FROM delivery_attempts a
USING {_POSITIONS} AS c (topic, partition, next_offset)
WHERE a.consumer_group = %(group)s
  AND a.topic = c.topic AND a.partition = c.partition AND a."offset" < c.next_offset
"""
# Rows no crash count reads any more (see _CRASHES), whatever topic or group they were of.
_FORGOTTEN = """
DELETE FROM delivery_attempts
WHERE last_started_at <= now() - make_interval(secs => %(remembered_s)s)
"""

Position = tuple[str, int, int]


def _params(group: str, positions: Sequence[Position], remembered_s: float = 0.0) -> dict[str, Any]:
    return {
        "group": group,
        "remembered_s": remembered_s,
        "topics": [p[0] for p in positions],
        "partitions": [p[1] for p in positions],
        "offsets": [p[2] for p in positions],
    }


def _positions(messages: Sequence[InboundMessage]) -> list[Position]:
    return [(m.topic, m.partition, m.offset) for m in messages]


class PostgresAttemptLog:
    """``glimpse.runtime.AttemptLog`` in Postgres; owns ``pool``. A start is remembered
    for ``remembered_s`` (a day): long past any crash loop, and past the longest item."""

    def __init__(
        self, pool: ConnectionPool[psycopg.Connection[Any]], remembered_s: float = 86_400.0
    ) -> None:
        self.pool = pool
        self.remembered_s = remembered_s

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        try:
            with self.pool.connection() as conn:
                yield conn
        except psycopg.Error as exc:
            raise TransientError(f"attempt log: {type(exc).__name__}: {exc}") from exc

    def crashes(self, group: str, messages: Sequence[InboundMessage]) -> list[int]:
        with self._connection() as conn:
            rows = conn.execute(
                _CRASHES, _params(group, _positions(messages), self.remembered_s)
            ).fetchall()
        started = {(r["topic"], r["partition"], r["offset"]): r["attempts"] for r in rows}
        return [started.get(p, 0) for p in _positions(messages)]

    def started(self, group: str, messages: Sequence[InboundMessage]) -> None:
        with self._connection() as conn:
            conn.execute(_STARTED, _params(group, _positions(messages)))

    def finished(self, group: str, messages: Sequence[InboundMessage]) -> None:
        with self._connection() as conn:
            conn.execute(_FINISHED, _params(group, _positions(messages)))

    def committed(self, group: str, next_offsets: Mapping[tuple[str, int], int]) -> None:
        positions = [(topic, part, offset) for (topic, part), offset in next_offsets.items()]
        with self._connection() as conn:
            conn.execute(_COMMITTED, _params(group, positions))
            conn.execute(_FORGOTTEN, {"remembered_s": self.remembered_s})

    def close(self) -> None:
        self.pool.close()
