"""SQL for ``backfill_jobs``: a job is a row with a cursor, advanced after each page the
broker acknowledged."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Literal

import psycopg

Stage = Literal["ingest", "caption", "embed", "transcribe", "labels"]
# labels: tagging with the active label sets, done by the job itself (glimpse/labels/)
STAGES: tuple[Stage, ...] = ("ingest", "caption", "transcribe", "embed", "labels")
# what `--stage all` runs: the stages of the pipeline, in its order
PIPELINE_STAGES: tuple[Stage, ...] = ("ingest", "caption", "transcribe", "embed")


def as_stage(name: str) -> Stage:
    """``name`` as a Stage; ValueError if it names none."""
    for stage in STAGES:
        if stage == name:
            return stage
    raise ValueError(f"unknown stage {name!r}: one of {', '.join(STAGES)}")


# a running job's process writes its heartbeat at least this often (each page, or idle)
HEARTBEAT_S = 10.0
# pg_try_advisory_lock(int, int): the first number keeps glimpse's locks apart from others'
_LOCK_SPACE = 0x61F1


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What a job does; two runs of the same command have the same spec."""

    stage: Stage
    mode: Literal["missing", "all"]
    model: str | None = None
    prefix: str = ""
    since: datetime | None = None
    older_than_s: float = 0.0
    rate: float | None = None


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    stage: Stage
    model: str | None
    mode: Literal["missing", "all"]
    prefix: str
    since: datetime | None
    older_than_s: float
    rate: float | None
    status: Literal["running", "interrupted", "done", "failed"]
    cursor: str | None
    total: int | None
    enqueued: int
    error: str | None
    created_at: datetime
    heartbeat_at: datetime
    finished_at: datetime | None
    alive: bool  # its process wrote a heartbeat lately (running and not: killed, resumable)

    @property
    def spec(self) -> JobSpec:
        return JobSpec(self.stage, self.mode, self.model, self.prefix, self.since,
                       self.older_than_s, self.rate)  # fmt: skip


_COLUMNS = ", ".join(f.name for f in fields(Job) if f.name != "alive")
_SELECT = (
    f"SELECT {_COLUMNS}, heartbeat_at > now() - make_interval(secs => %(stale_s)s) AS alive "
    "FROM backfill_jobs"
)


def create(conn: psycopg.Connection[Any], spec: JobSpec) -> Job:
    row = conn.execute(
        """
        INSERT INTO backfill_jobs (stage, model, mode, prefix, since, older_than_s, rate)
        VALUES (%(stage)s, %(model)s, %(mode)s, %(prefix)s, %(since)s, %(older_than_s)s,
                %(rate)s)
        RETURNING id
        """,
        _spec_params(spec),
    ).fetchone()
    assert row is not None
    job = get(conn, int(row["id"]))
    assert job is not None
    return job


def unfinished_like(conn: psycopg.Connection[Any], spec: JobSpec) -> Job | None:
    """The newest unfinished job with the same spec: a re-run of a command resumes it."""
    row = conn.execute(
        _SELECT
        + """
        WHERE status IN ('running', 'interrupted') AND stage = %(stage)s AND mode = %(mode)s
          AND model IS NOT DISTINCT FROM %(model)s AND prefix = %(prefix)s
          AND since IS NOT DISTINCT FROM %(since)s AND older_than_s = %(older_than_s)s
        ORDER BY id DESC LIMIT 1
        """,
        {**_spec_params(spec), "stale_s": 3 * HEARTBEAT_S},
    ).fetchone()
    return _job(row)


def running_ingest_prefixes(conn: psycopg.Connection[Any]) -> list[str]:
    """The prefixes of the ingest jobs running now (their process alive): each lists its
    part of the bucket and sends what has no row, so reconcile leaves that part to it."""
    rows = conn.execute(
        _SELECT + " WHERE stage = 'ingest' AND status = 'running'",
        {"stale_s": 3 * HEARTBEAT_S},
    ).fetchall()
    return [job.prefix for job in map(_job, rows) if job is not None and job.alive]


def ingest_prefixes_done_within(conn: psycopg.Connection[Any], within_s: float) -> list[str]:
    """The prefixes of the ingest jobs that finished enqueuing in the last ``within_s``."""
    rows = conn.execute(
        """
        SELECT DISTINCT prefix FROM backfill_jobs
        WHERE stage = 'ingest' AND status = 'done'
          AND finished_at > now() - make_interval(secs => %(within_s)s)
        """,
        {"within_s": within_s},
    ).fetchall()
    return [str(row["prefix"]) for row in rows]


def get(conn: psycopg.Connection[Any], job_id: int) -> Job | None:
    row = conn.execute(
        _SELECT + " WHERE id = %(id)s", {"id": job_id, "stale_s": 3 * HEARTBEAT_S}
    ).fetchone()
    return _job(row)


def recent(conn: psycopg.Connection[Any], limit: int = 20) -> list[Job]:
    rows = conn.execute(
        _SELECT + " ORDER BY id DESC LIMIT %(limit)s",
        {"limit": limit, "stale_s": 3 * HEARTBEAT_S},
    ).fetchall()
    return [j for j in map(_job, rows) if j is not None]


def claim(conn: psycopg.Connection[Any], job_id: int) -> bool:
    """Whether this session now holds the job: one process runs a job at a time. The
    lock goes with the session, so a killed process frees it at once."""
    row = conn.execute(
        "SELECT pg_try_advisory_lock(%(space)s, %(id)s::int) AS got",
        {"space": _LOCK_SPACE, "id": job_id},
    ).fetchone()
    return bool(row and row["got"])


def resume(conn: psycopg.Connection[Any], job_id: int) -> None:
    conn.execute(
        "UPDATE backfill_jobs SET status = 'running', error = NULL, finished_at = NULL, "
        "heartbeat_at = now() WHERE id = %(id)s",
        {"id": job_id},
    )


def advance(conn: psycopg.Connection[Any], job_id: int, cursor: str, enqueued: int) -> None:
    conn.execute(
        "UPDATE backfill_jobs SET cursor = %(cursor)s, enqueued = enqueued + %(n)s, "
        "heartbeat_at = now() WHERE id = %(id)s",
        {"id": job_id, "cursor": cursor, "n": enqueued},
    )


def beat(conn: psycopg.Connection[Any], job_id: int) -> None:
    conn.execute("UPDATE backfill_jobs SET heartbeat_at = now() WHERE id = %(id)s", {"id": job_id})


def set_total(conn: psycopg.Connection[Any], job_id: int, total: int) -> None:
    conn.execute(
        "UPDATE backfill_jobs SET total = %(total)s WHERE id = %(id)s",
        {"id": job_id, "total": total},
    )


def finish(
    conn: psycopg.Connection[Any], job_id: int, status: Literal["interrupted", "done", "failed"],
    error: str | None = None,
) -> None:  # fmt: skip
    conn.execute(
        "UPDATE backfill_jobs SET status = %(status)s, error = %(error)s, "
        "finished_at = now(), heartbeat_at = now() WHERE id = %(id)s",
        {"id": job_id, "status": status, "error": error},
    )


def _spec_params(spec: JobSpec) -> dict[str, Any]:
    return {f.name: getattr(spec, f.name) for f in fields(spec)}


def _job(row: dict[str, Any] | None) -> Job | None:
    return None if row is None else Job(**row)
