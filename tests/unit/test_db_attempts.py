"""The attempt log: handler calls started and not finished, per message, in Postgres."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from glimpse.bus import InboundMessage
from glimpse.config import DatabaseSettings
from glimpse.db.attempts import PostgresAttemptLog
from glimpse.db.pool import open_pool
from glimpse.errors import is_transient


def at(offset: int, partition: int = 0) -> InboundMessage:
    return InboundMessage("t", partition, offset, None, b"", 0)


@pytest.fixture
def log(postgres: str) -> Iterator[PostgresAttemptLog]:
    attempts = PostgresAttemptLog(open_pool(DatabaseSettings(url=postgres), "attempts-test"))
    yield attempts
    attempts.close()


@pytest.fixture
def group() -> str:
    return f"test-{uuid.uuid4()}"


def test_a_start_without_a_finish_counts_as_a_death(log: PostgresAttemptLog, group: str) -> None:
    log.started(group, [at(1), at(2)])  # the process died here
    log.started(group, [at(1)])  # and here, with 1 alone

    assert log.crashes(group, [at(1), at(2), at(3)]) == [2, 1, 0]
    assert log.crashes(f"other-{group}", [at(1)]) == [0]  # per consumer group

    log.started(group, [at(2)])
    log.finished(group, [at(2)])  # it came back: 2 is innocent
    assert log.crashes(group, [at(1), at(2)]) == [2, 0]


def test_a_commit_forgets_everything_below_it_on_its_partition(
    log: PostgresAttemptLog, group: str
) -> None:
    log.started(group, [at(5), at(9), at(5, partition=1)])

    log.committed(group, {("t", 0): 6})

    assert log.crashes(group, [at(5), at(9), at(5, partition=1)]) == [0, 1, 1]


def test_an_old_start_is_no_evidence_against_the_message_at_its_position_now(
    postgres: str, group: str
) -> None:
    # As after a wiped broker beside a kept database: offsets start over.
    pool = open_pool(DatabaseSettings(url=postgres), "attempts-test")
    forgetful = PostgresAttemptLog(pool, remembered_s=0.5)
    try:
        forgetful.started(group, [at(3)])
        assert forgetful.crashes(group, [at(3)]) == [1]
        time.sleep(0.6)
        assert forgetful.crashes(group, [at(3)]) == [0]

        forgetful.committed(f"other-{group}", {("t", 0): 0})  # any commit sweeps them
        with pool.connection() as conn:
            left = conn.execute(
                "SELECT count(*) AS n FROM delivery_attempts WHERE consumer_group = %(g)s",
                {"g": group},
            ).fetchone()
        assert left is not None and left["n"] == 0
    finally:
        forgetful.close()


def test_a_failing_log_is_infrastructure_trouble_never_the_items(postgres: str) -> None:
    # A database without the table, as before the migration ran.
    elsewhere = postgres.rsplit("/", 1)[0] + "/postgres"
    attempts = PostgresAttemptLog(open_pool(DatabaseSettings(url=elsewhere), "attempts-test"))
    try:
        with pytest.raises(Exception) as failed:
            attempts.started("g", [at(1)])
    finally:
        attempts.close()
    assert is_transient(failed.value)
