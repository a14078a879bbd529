"""``glimpse backfill`` and ``glimpse repair``: put stored items through a stage again.

    glimpse backfill --stage caption --missing        # captions the workers' model lacks
    glimpse backfill --stage ingest --missing --prefix 2019/ --rate 200
    glimpse backfill --stage embed --all --detach     # returns at once; see `backfill list`
    glimpse backfill list
    glimpse repair                                    # one stage-repair pass (k8s CronJob)

The same command run again resumes its unfinished job. Progress counts *completed*
items, read from Postgres, not messages sent.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from types import FrameType
from typing import Annotated, Any, Literal

import psycopg
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from glimpse.backfill import (
    PAGE_SIZE,
    BackfillError,
    StageWork,
    job_scope,
    repair,
    run_job,
    stage_work,
)
from glimpse.cli_common import connect, fail, producer, resolved
from glimpse.config import Settings
from glimpse.db import backfill_jobs as jobs
from glimpse.db.backfill_jobs import PIPELINE_STAGES, STAGES, Job, JobSpec, Stage, as_stage
from glimpse.stack.layout import HomeLayout
from glimpse.storage import ObjectStore

backfill_app = typer.Typer(
    help="Put stored items through a stage again: missing results, or everything.",
    invoke_without_command=True,
)
console = Console(stderr=True)
out = Console()
# after the last page is enqueued, progress is followed until nothing completes for this long
_STALL_S = 60.0


@backfill_app.callback()
def backfill(
    ctx: typer.Context,
    stage: Annotated[
        str | None,
        typer.Option(help=f"One of {', '.join(STAGES)}, or all ({', '.join(PIPELINE_STAGES)})."),
    ] = None,
    missing: Annotated[
        bool, typer.Option("--missing", help="Only items lacking a result.")
    ] = False,
    everything: Annotated[
        bool, typer.Option("--all", help="Every item in scope (after a model or rule change).")
    ] = False,
    model: Annotated[
        str | None, typer.Option(help="The model the work is for; must be the one the workers run.")
    ] = None,
    prefix: Annotated[str, typer.Option(help="Only keys starting with this.")] = "",
    since: Annotated[datetime | None, typer.Option(help="Only media created since (UTC).")] = None,
    older_than: Annotated[
        str, typer.Option(help="Only media untouched this long (e.g. 10m, 2h).")
    ] = "0s",
    rate: Annotated[float | None, typer.Option(help="Items per second at most.")] = None,
    detach: Annotated[bool, typer.Option(help="Run in the background; return at once.")] = False,
    job_id: Annotated[int | None, typer.Option("--job", help="Resume this job.")] = None,
    wait: Annotated[bool, typer.Option(help="Follow completion after enqueueing.")] = True,
    page_size: Annotated[int, typer.Option(help="Items per page (one cursor step).")] = PAGE_SIZE,
) -> None:
    if ctx.invoked_subcommand:
        return
    settings = resolved()
    assert settings.database.url
    with connect(settings) as conn:
        if job_id is not None:
            found = jobs.get(conn, job_id)
            if found is None:
                fail(f"there is no backfill job {job_id}")
            todo = [found]
        else:
            specs = _specs(stage, missing, everything, model, prefix, since, older_than, rate)
            todo = [jobs.unfinished_like(conn, s) or jobs.create(conn, s) for s in specs]
    if detach:
        _detach(settings, todo, page_size)
        return
    for job in todo:
        run_and_show(settings, job, wait, page_size)


@backfill_app.command("list")
def list_jobs(
    limit: Annotated[int, typer.Option(help="How many of the newest jobs.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable.")] = False,
) -> None:
    """Running, interrupted and finished jobs with their progress."""
    settings = resolved()
    with connect(settings) as conn:
        rows = [
            job_report(job, _completed(settings, conn, job)) for job in jobs.recent(conn, limit)
        ]
    if as_json:
        out.print_json(json.dumps(rows, default=str))
        return
    table = Table("job", "stage", "scope", "state", "enqueued", "completed", "total", "started")
    for r in rows:
        scope = " ".join(x for x in (r["mode"], r["model"], r["prefix"]) if x)
        table.add_row(str(r["id"]), r["stage"], scope, r["state"], f"{r['enqueued']:,}",
                      _count(r["completed"]), _count(r["total"]), r["started"][:16])  # fmt: skip
    out.print(table)


def _count(n: int | None) -> str:
    return "" if n is None else f"{n:,}"


def job_report(job: Job, completed: int | None) -> dict[str, Any]:
    return {
        "id": job.id, "stage": job.stage, "mode": job.mode, "model": job.model,
        "prefix": job.prefix, "state": state_of(job), "enqueued": job.enqueued,
        "completed": completed, "total": job.total, "started": job.created_at.isoformat(),
        "finished": job.finished_at.isoformat() if job.finished_at else None,
    }  # fmt: skip


def state_of(job: Job) -> str:
    """running | interrupted (resumable: run it again) | done | failed: the error."""
    if job.status == "running":
        return "running" if job.alive else "interrupted"  # its process was killed
    return f"failed: {job.error}" if job.status == "failed" else job.status


def repair_command(
    older_than: Annotated[
        str | None, typer.Option(help="Items untouched this long (default: stack.repair_after_s).")
    ] = None,
) -> None:
    """One stage-repair pass: announce again accepted items that lack a caption,
    transcript or vector of the models the workers run."""
    settings = resolved()
    age = _seconds(older_than) if older_than else settings.stack.repair_after_s
    with connect(settings) as conn, producer(settings) as sender:
        sent = repair(conn, sender, ObjectStore(settings.s3), settings.kafka, age,
                      threading.Event(), settings.limits)  # fmt: skip
    out.print("announced again: " + ", ".join(f"{s} {n}" for s, n in sent.items()))


def run_and_show(settings: Settings, job: Job, wait: bool, page_size: int) -> None:
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    failure: list[BaseException] = []
    finished = [False]
    with connect(settings) as watch:
        work = _work(settings, watch, job)

        def enqueue_all() -> None:
            try:
                with connect(settings) as conn, producer(settings) as sender:
                    finished[0] = run_job(job, work, conn, sender, stop, page_size)
            except BaseException as exc:
                failure.append(exc)

        runner = threading.Thread(target=enqueue_all, name=f"backfill-{job.id}")
        runner.start()
        _show_progress(watch, job, work, runner, stop, wait)
        runner.join()
    if failure:
        fail(f"backfill job {job.id} stopped: {failure[0]}")
    if not finished[0]:
        console.print(f"job {job.id} interrupted; run the same command again to resume it")


def _show_progress(
    conn: psycopg.Connection[Any], job: Job, work: StageWork, runner: threading.Thread,
    stop: threading.Event, wait: bool,
) -> None:  # fmt: skip
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeRemainingColumn())  # fmt: skip
    label = f"job {job.id}: {job.stage} {job.mode}" + (f" {job.prefix}" if job.prefix else "")
    with Progress(*columns, console=console, transient=False) as progress:
        enqueued = progress.add_task(f"{label} enqueued ", total=None, rate="")
        completed = progress.add_task(f"{label} completed", total=None, rate="")
        began, last_done, last_change = time.monotonic(), -1, time.monotonic()
        while True:
            now = jobs.get(conn, job.id)
            assert now is not None
            done = work.done(conn, now.cursor, job.created_at)
            speed = done / max(time.monotonic() - began, 1e-3)
            progress.update(enqueued, completed=now.enqueued, total=now.total)
            progress.update(completed, completed=done, total=now.total or now.enqueued or None,
                            rate=f"{speed:.1f}/s")  # fmt: skip
            if done != last_done:
                last_done, last_change = done, time.monotonic()
            if not runner.is_alive():
                caught_up = now.total is not None and done >= now.total
                if not wait or stop.is_set() or caught_up or done >= now.enqueued:
                    return
                if time.monotonic() - last_change > _STALL_S:
                    console.print(f"{now.enqueued - done:,} enqueued items produced no new "
                                  "result (already done by this model, or failed: see "
                                  "`glimpse dlq list`)")  # fmt: skip
                    return
            if stop.wait(0.5) and not runner.is_alive():
                return


def _completed(settings: Settings, conn: psycopg.Connection[Any], job: Job) -> int | None:
    """The job's completed items; None when its work is gone (a label set deleted since)."""
    try:
        work = _stage_work(settings, conn, job)
    except BackfillError:
        return None
    return work.done(conn, job.cursor, job.created_at)


def _work(settings: Settings, conn: psycopg.Connection[Any], job: Job) -> StageWork:
    try:
        return _stage_work(settings, conn, job)
    except BackfillError as exc:
        fail(str(exc))


def _stage_work(settings: Settings, conn: psycopg.Connection[Any], job: Job) -> StageWork:
    return stage_work(conn, job.stage, job.mode, job_scope(job, settings.s3.bucket),
                      settings.kafka, ObjectStore(settings.s3), job.model)  # fmt: skip


def _specs(
    stage: str | None, missing: bool, everything: bool, model: str | None, prefix: str,
    since: datetime | None, older_than: str, rate: float | None,
) -> list[JobSpec]:  # fmt: skip
    if stage is None:
        fail("say which stage: --stage " + "|".join((*STAGES, "all")))
    if stage != "all" and stage not in STAGES:
        fail(f"unknown stage {stage!r}: one of {', '.join(STAGES)}, all")
    if missing == everything:
        fail("say which items: --missing (lacking a result) or --all")
    if rate is not None and rate <= 0:
        fail("--rate must be above 0")
    mode: Literal["missing", "all"] = "missing" if missing else "all"
    stages: tuple[Stage, ...] = PIPELINE_STAGES if stage == "all" else (as_stage(stage),)
    when = since.replace(tzinfo=UTC) if since and since.tzinfo is None else since
    age = _seconds(older_than)
    return [JobSpec(s, mode, model, prefix, when, age, rate) for s in stages]


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _seconds(text: str) -> float:
    """``90``, ``90s``, ``10m``, ``2h``, ``1d`` in seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not match:
        fail(f"{text!r} is no duration: say e.g. 30s, 10m, 2h or 1d")
    return float(match[1]) * _UNITS[match[2] or "s"]


def _detach(settings: Settings, todo: list[Job], page_size: int) -> None:
    logs = HomeLayout.at(settings.home).logs
    logs.mkdir(parents=True, exist_ok=True)
    for job in todo:
        log_path = logs / f"backfill-{job.id}.log"
        with log_path.open("ab") as log_file:
            subprocess.Popen(
                [sys.executable, "-m", "glimpse.cli", "backfill", "--job", str(job.id),
                 "--no-wait", "--page-size", str(page_size)],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                start_new_session=True,  # a closed terminal does not stop it
            )  # fmt: skip
        out.print(f"backfill job {job.id} ({job.stage}) runs in the background; "
                  f"`glimpse backfill list` shows it, {log_path} its output")  # fmt: skip


def start_in_background(settings: Settings, spec: JobSpec) -> None:
    """Run a backfill of ``spec`` as ``--detach`` does (resuming an unfinished one like it)."""
    with connect(settings) as conn:
        job = jobs.unfinished_like(conn, spec) or jobs.create(conn, spec)
    _detach(settings, [job], PAGE_SIZE)
