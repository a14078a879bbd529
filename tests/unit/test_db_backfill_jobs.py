"""Backfill jobs in Postgres: a re-run finds its job, one process runs it at a time."""

from __future__ import annotations

import time
import uuid
from typing import Any

import psycopg
from psycopg.rows import dict_row

from glimpse.db import backfill_jobs as jobs
from glimpse.db.backfill_jobs import JobSpec


def connect(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, row_factory=dict_row, autocommit=True)


def test_the_same_command_resumes_its_unfinished_job_and_another_starts_a_new_one(
    postgres: str,
) -> None:
    prefix = f"resume-{uuid.uuid4().hex[:8]}/"
    spec = JobSpec("caption", "missing", prefix=prefix)
    with connect(postgres) as conn:
        job = jobs.create(conn, spec)
        jobs.advance(conn, job.id, "cursor-1", 500)

        again = jobs.unfinished_like(conn, spec)
        assert again is not None and again.id == job.id
        assert (again.cursor, again.enqueued, again.status) == ("cursor-1", 500, "running")
        assert jobs.unfinished_like(conn, JobSpec("caption", "all", prefix=prefix)) is None
        assert jobs.unfinished_like(conn, JobSpec("embed", "missing", prefix=prefix)) is None

        jobs.finish(conn, job.id, "done")
        assert jobs.unfinished_like(conn, spec) is None  # finished: a re-run starts anew
        assert jobs.get(conn, job.id).status == "done"  # type: ignore[union-attr]


def test_one_process_holds_a_job_and_a_dead_one_lets_go_at_once(postgres: str) -> None:
    with connect(postgres) as conn:
        job = jobs.create(conn, JobSpec("ingest", "missing", prefix=f"{uuid.uuid4()}/"))
    first = connect(postgres)
    with connect(postgres) as second:
        assert jobs.claim(first, job.id)
        assert not jobs.claim(second, job.id)
        first.close()  # the process died: its session and lock go with it
        deadline = time.monotonic() + 10  # as soon as its backend has exited
        while not jobs.claim(second, job.id):
            assert time.monotonic() < deadline, "the lock outlived its session"
            time.sleep(0.05)


def test_a_job_is_alive_while_its_heartbeat_is_recent(postgres: str) -> None:
    with connect(postgres) as conn:
        job = jobs.create(conn, JobSpec("embed", "all", prefix=f"{uuid.uuid4()}/"))
        assert job.alive
        conn.execute(
            "UPDATE backfill_jobs SET heartbeat_at = now() - interval '5 minutes' "
            "WHERE id = %(id)s",
            {"id": job.id},
        )
        assert not jobs.get(conn, job.id).alive  # type: ignore[union-attr]
        jobs.beat(conn, job.id)
        assert jobs.get(conn, job.id).alive  # type: ignore[union-attr]
