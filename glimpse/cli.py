"""The `glimpse` command: up | down | status | ingest | reconcile | lag-exporter."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import httpx
import psycopg
import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from glimpse.cli_backfill import backfill_app, job_report, repair_command, state_of
from glimpse.cli_captioner import captioner_app
from glimpse.cli_dlq import dlq_app
from glimpse.cli_labels import labels_app
from glimpse.cli_models import models_app
from glimpse.config import Settings
from glimpse.db import backfill_jobs, media
from glimpse.redact import redact_url
from glimpse.stack.connect import StackNotRunning, resolve, running_endpoints
from glimpse.stack.layout import HomeLayout, read_part_states
from glimpse.stack.ports import worker_health_ports, worker_replicas
from glimpse.storage import ObjectStore

app = typer.Typer(
    help="glimpse: make a bucket of images and voice notes searchable.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)
out = Console()


def _settings() -> Settings:
    return Settings()


def _resolved() -> Settings:
    try:
        return resolve(_settings())
    except StackNotRunning as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc


class _Interrupted(Exception):
    pass


@app.command()
def up(
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Return once everything is ready.")
    ] = False,
) -> None:
    """Start glimpse on the embedded stack (or on the external endpoints you configured)."""
    settings = _settings()
    layout = _private_home(settings)
    if detach:
        _up_detached(layout)
        return
    from glimpse.stack.supervisor import EmbeddedStack  # heavy imports only for `up`

    with layout.lock_file.open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            console.print(f"[red]glimpse is already running for {layout.home}[/red]")
            raise typer.Exit(1) from None
        layout.pid_file.write_text(str(os.getpid()))
        logging.basicConfig(
            filename=layout.logs / "up.log",
            level=settings.log_level.upper(),
            format="%(asctime)s %(levelname)-7s up %(name)s: %(message)s",
        )
        stop = threading.Event()
        supervising = threading.Event()

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            stop.set()
            if not supervising.is_set():
                raise _Interrupted  # abort a start in progress; `finally` stops what started

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        stack = EmbeddedStack(settings, progress=console.print)
        started = time.monotonic()
        failed = False
        try:
            console.print(f"[bold]glimpse[/bold] starting in {layout.home}")
            resolved = stack.start()
            console.print(f"[green]ready in {time.monotonic() - started:.1f}s[/green]")
            _print_endpoints(resolved, layout, stack.loading())
            supervising.set()
            stack.supervise(stop)
        except _Interrupted:
            console.print("interrupted; stopping")
        except Exception as exc:
            # A part that cannot start (port taken, broken data dir…): say which and
            # where its log is, stop what did start, exit non-zero.
            logging.getLogger(__name__).exception("start failed")
            console.print(f"[red]glimpse could not start: {exc}[/red]")
            console.print(f"full log: {layout.logs / 'up.log'}")
            failed = True
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            stack.stop()
            layout.pid_file.unlink(missing_ok=True)
            console.print("stopped")
        if failed:
            raise typer.Exit(1)


def _private_home(settings: Settings) -> HomeLayout:
    """Everything `up` and its children write (logs, pid and endpoint files, data) is
    the owner's alone: logs can name credentials, and the data is the user's media."""
    os.umask(0o077)
    layout = HomeLayout.at(settings.home)
    layout.ensure()
    return layout


def _page_link(api_url: str, layout: HomeLayout) -> str:
    """The web page, with the admin key in the fragment, like a notebook's token link:
    the page keeps it for uploads, and a fragment never reaches the server's logs.

    Only a terminal gets the key: printed elsewhere (`up --detach`'s log, a CI log,
    a pipe) it would outlive the moment; there the line says where the key is."""
    key = layout.api_key.read_text().strip() if layout.api_key.exists() else ""
    if key and console.is_terminal:
        return f"{api_url}/#key={key}"
    if key:
        return f"{api_url}/  (admin key for uploads: {layout.api_key})"
    return f"{api_url}/"


def _print_endpoints(s: Settings, layout: HomeLayout, loading: list[str]) -> None:
    if loading:
        # uploads are accepted already: they wait in Kafka for these workers
        console.print(f"still loading models: {', '.join(loading)}")
    table = Table(show_header=False, box=None)
    base = f"http://{s.api.host}:{s.api.port}"
    table.add_row("API", f"{base}  (docs: /docs)")
    table.add_row("S3", f"{s.s3.endpoint}  bucket [bold]{s.s3.bucket}[/bold]")
    table.add_row("S3 credentials", str(layout.s3_credentials))
    table.add_row("Kafka", str(s.kafka.bootstrap))
    table.add_row("Postgres", redact_url(s.database.url or ""))
    table.add_row("logs", str(layout.logs))
    console.print(table)
    link = _page_link(base, layout)
    console.print(f"web page: [bold]{link}[/bold]", soft_wrap=True)  # one clickable line
    console.print(
        "Open the web page, or upload with `glimpse ingest PATH --wait` or any S3 client. "
        "Ctrl-C stops."
    )


def _up_detached(layout: HomeLayout, timeout_s: float = 300) -> None:
    """Run `glimpse up` in the background and return once it reports ready."""
    log_path = layout.logs / "up.console.log"
    with log_path.open("ab") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "glimpse.cli", "up"],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout_s
    with console.status("starting glimpse in the background…"):
        while time.monotonic() < deadline:
            endpoints = running_endpoints(Settings(home=layout.home))
            if endpoints and endpoints.ready and endpoints.supervisor_pid == proc.pid:
                console.print(
                    f"[green]glimpse is up[/green] (pid {proc.pid}); API {endpoints.api_url}; "
                    f"`glimpse down` stops it; log: {log_path}"
                )
                # soft_wrap: a link broken over two lines cannot be clicked or copied
                link = _page_link(endpoints.api_url, layout)
                console.print(f"web page: [bold]{link}[/bold]", soft_wrap=True)
                states = _worker_states(Settings(home=layout.home))
                if loading := [name for name, (state, _) in states.items() if state != "ok"]:
                    console.print(
                        f"still loading: {', '.join(loading)} (uploads wait in Kafka for them; "
                        "`glimpse status` shows when they are ready)"
                    )
                return
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace").splitlines()[-20:]
                console.print("[red]glimpse up exited:[/red]\n" + "\n".join(tail))
                raise typer.Exit(1)
            time.sleep(0.3)
    console.print(f"[red]not ready after {timeout_s:.0f}s; see {log_path}[/red]")
    raise typer.Exit(1)


@app.command()
def down(timeout_s: float = 90) -> None:
    """Stop a `glimpse up` running for this home."""
    layout = HomeLayout.at(_settings().home)
    try:
        pid = int(layout.pid_file.read_text())
        os.kill(pid, signal.SIGTERM)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        console.print("glimpse is not running")
        return
    deadline = time.monotonic() + timeout_s
    with console.status(f"stopping glimpse (pid {pid})…"):
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                console.print("stopped")
                return
            time.sleep(0.2)
    console.print(f"[red]pid {pid} still running after {timeout_s:.0f}s[/red]")
    raise typer.Exit(1)


def _check(name: str, probe: Any) -> tuple[str, bool, str]:
    try:
        detail = probe()
        return name, True, str(detail or "ok")
    except Exception as exc:
        return name, False, f"{type(exc).__name__}: {exc}"


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable.")] = False,
) -> None:
    """Health of every part, media counts per status, and the endpoints."""
    settings = _resolved()
    layout = HomeLayout.at(settings.home)
    endpoints = running_endpoints(settings)
    store = ObjectStore(settings.s3)
    counts: dict[str, int] = {}
    backfills: list[dict[str, Any]] = []  # running or interrupted jobs

    def database() -> str:
        assert settings.database.url
        with psycopg.connect(
            settings.database.url, connect_timeout=3, row_factory=_dict_row()
        ) as conn:
            counts.update(media.status_counts(conn))
            counts.update(media.stage_counts(conn))
            backfills.extend(
                job_report(job, None) for job in backfill_jobs.recent(conn, 10)
                if state_of(job) in ("running", "interrupted")
            )  # fmt: skip
        return "ok"

    def broker() -> str:
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(
            bootstrap_servers=settings.kafka.bootstrap, request_timeout_ms=3000
        )
        try:
            return f"{len(admin.list_topics())} topics"
        finally:
            admin.close()

    def bucket() -> str:
        store.check_bucket()
        return "ok"

    api_url = f"http://{settings.api.host}:{settings.api.port}"
    checks = [
        _check("s3", bucket),
        _check("kafka", broker),
        _check("database", database),
        _check("api", partial(_api_ready, f"{api_url}/readyz")),
    ]
    workers = _worker_states(settings)
    stages = _stage_activity(settings)
    states = {name: "ok" if ok else "down" for name, ok, _ in checks}
    details = {name: detail for name, _, detail in checks}
    if details["api"] == _QUERY_MODEL_LOADING:
        states["api"] = "loading"  # uploads work already; searches wait for the model
    for name, (state, detail) in workers.items():
        states[name], details[name] = state, detail
    endpoint_info = {
        "s3_url": settings.s3.endpoint,
        "s3_bucket": settings.s3.bucket,
        "s3_credentials_file": endpoints.s3_credentials_file if endpoints else None,
        "api_key_file": endpoints.api_key_file if endpoints else None,
        "kafka_bootstrap": settings.kafka.bootstrap,
        "database_url": redact_url(settings.database.url or ""),
        "api_url": api_url,
        "logs": str(layout.logs),
    }
    report = {
        "endpoints": endpoint_info,
        "health": {
            name: {"ok": state == "ok", "state": state, "detail": details[name]}
            for name, state in states.items()
        },
        "media": counts,
        "stages": stages,
        "backfill": backfills,
    }
    if as_json:
        out.print_json(json.dumps(report))
    else:
        table = Table("part", "health", "detail")
        colours = {"ok": "green", "loading": "yellow", "down": "red"}
        for name, state in states.items():
            table.add_row(name, f"[{colours[state]}]{state}[/{colours[state]}]", details[name])
        out.print(table)
        out.print(_stage_table(stages))
        out.print(
            "media: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none yet")
        )
        for job in backfills:
            total = f" of {job['total']:,}" if job["total"] is not None else ""
            what = f"backfill job {job['id']} ({job['stage']} {job['mode']}): {job['state']}"
            out.print(f"{what}, {job['enqueued']:,}{total} enqueued (`glimpse backfill list`)")
        for key, value in endpoint_info.items():
            out.print(f"{key}: {value}")
    # a worker still loading its model is coming up, not broken
    if "down" in states.values():
        raise typer.Exit(1)


def _http_ok(url: str) -> str:
    httpx.get(url, timeout=3).raise_for_status()
    return "ok"


_QUERY_MODEL_LOADING = "ready for uploads; query model loading"


def _api_ready(url: str) -> str:
    response = httpx.get(url, timeout=3)
    response.raise_for_status()
    checks = response.json()
    return _QUERY_MODEL_LOADING if checks.get("query_model") == "loading" else "ok"


#: what a starting worker's /readyz says before it is ready (glimpse/runtime.py)
_COMING_UP = ("loading", "waiting for", "connecting")


def _worker_states(settings: Settings) -> dict[str, tuple[str, str]]:
    """Each worker: ("ok" | "loading" | "down", detail) from its /readyz."""
    # what the supervisor says of parts that do not answer yet (starting, restarting)
    supervised = read_part_states(HomeLayout.at(settings.home).parts_file)
    states: dict[str, tuple[str, str]] = {}
    for name, port in worker_health_ports(settings.stack).items():
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=3)
        except httpx.HTTPError as exc:
            if supervised.get(name) in {"starting", "restarting"}:
                states[name] = ("loading", f"process {supervised[name]}")
            else:
                states[name] = ("down", f"{type(exc).__name__}: {exc}")
            continue
        text = response.text.strip()
        if response.status_code == 200:
            states[name] = ("ok", "ready")
        else:
            states[name] = ("loading" if text.startswith(_COMING_UP) else "down", text)
    return states


def _stage_activity(settings: Settings) -> dict[str, dict[str, Any]]:
    """Per stage: its group's lag per partition and its backfill group's lag (read from
    the broker, so also when no worker runs), and from its workers' /status (replicas
    summed) the messages finished in the last minute and the last error. A side-by-side
    worker's groups (``embed --side-by-side``) are a row of their own."""
    from glimpse import stages as pipeline
    from glimpse.group_lag import read_group_lag

    topics = pipeline.stage_topics(settings.kafka)

    def row() -> dict[str, Any]:
        return {"lag": None, "backfill_lag": None, "partitions": {},
                "messages_per_minute": None, "last_error": None}  # fmt: skip

    stages: dict[str, dict[str, Any]] = {stage: row() for stage in topics}
    if settings.kafka.bootstrap:
        groups = pipeline.consumer_groups(settings.kafka)
        owner = {pipeline.group_of(stage): (stage, "lag") for stage in topics}
        owner |= {pipeline.backfill_group_of(stage): (stage, "backfill_lag") for stage in topics}
        discover = partial(pipeline.side_by_side_groups, settings.kafka)
        try:
            found = read_group_lag(settings.kafka.bootstrap, groups, 3, discover)
            for p in found:
                base, _, model = p.group.partition("--")
                stage, field = owner[base]
                entry = stages.setdefault(f"{stage} --side-by-side {model}" if model else stage,
                                          row())  # fmt: skip
                if field == "lag":
                    entry["partitions"][f"{p.topic}/{p.partition}"] = p.lag
                entry[field] = (entry[field] or 0) + p.lag
        except Exception as exc:  # the broker check above says why
            logging.getLogger(__name__).debug("lag not read: %r", exc)
    for replica in worker_replicas(settings.stack):  # a stage's replicas add up
        try:
            answer = httpx.get(f"http://127.0.0.1:{replica.port}/status", timeout=3)
            answer.raise_for_status()
        except httpx.HTTPError:
            continue
        report, entry = answer.json(), stages[replica.stage]
        entry["messages_per_minute"] = (entry["messages_per_minute"] or 0) + report[
            "messages_per_minute"
        ]
        error, last = report["last_error"], entry["last_error"]
        if error and (last is None or error["at"] > last["at"]):
            entry["last_error"] = error
    return stages


def _stage_table(stages: dict[str, dict[str, Any]]) -> Table:
    table = Table("stage", "lag", "backfill lag", "msgs/min", "last error")
    for stage, entry in stages.items():
        error = entry["last_error"]
        when = time.strftime("%H:%M:%S", time.localtime(error["at"])) if error else ""
        table.add_row(
            stage,
            "?" if entry["lag"] is None else str(entry["lag"]),
            "-" if entry["backfill_lag"] is None else str(entry["backfill_lag"]),
            "-" if entry["messages_per_minute"] is None else f"{entry['messages_per_minute']:.0f}",
            f"{when} {error['kind']} {error['error_type']}: {error['message'][:80]}"
            if error
            else "",
        )
    return table


def _dict_row() -> Any:
    from psycopg.rows import dict_row

    return dict_row


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to upload.")],
    prefix: Annotated[str, typer.Option(help="Key prefix in the bucket, e.g. 'trips/2024/'.")] = "",
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait and print each file's outcome.")
    ] = False,
    timeout_s: Annotated[float, typer.Option("--timeout", help="How long --wait waits.")] = 300,
) -> None:
    """Upload files or folders into the bucket; ingest validates and records each one."""
    from glimpse.uploader import plan, upload, wait_for_outcomes

    settings = _resolved()
    store = ObjectStore(settings.s3)
    try:
        uploads = plan(paths, prefix)
    except FileNotFoundError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    total = sum(u.path.stat().st_size for u in uploads)
    etags: dict[str, str | None] = {}
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(f"uploading {len(uploads)} files", total=total)
        for item in uploads:
            upload(store, item, lambda n: progress.advance(task, n))
            head = store.head(item.key)
            etags[item.key] = head.etag if head else None
    console.print(f"uploaded {len(uploads)} files to s3://{store.bucket}/{prefix}")
    if not wait:
        return
    assert settings.database.url
    table = Table("key", "outcome", "detail")
    failed = 0
    with (
        psycopg.connect(settings.database.url, row_factory=_dict_row()) as conn,
        console.status("waiting for ingest…"),
    ):
        seen = set()
        for row in wait_for_outcomes(conn, store.bucket, etags, timeout_s):
            seen.add(row["key"])
            detail = _outcome_detail(row)
            failed += row["status"] in {"rejected", "failed"}
            table.add_row(row["key"], row["status"], detail)
    for key in etags.keys() - seen:
        table.add_row(key, "[yellow]pending[/yellow]", f"no outcome after {timeout_s:.0f}s")
        failed += 1
    out.print(table)
    if failed:
        raise typer.Exit(1)


def _outcome_detail(row: dict[str, Any]) -> str:
    if row["status"] in {"rejected", "failed"}:
        return f"{row['reason']}: {row['reason_detail']}"
    if row["status"] == "duplicate":
        return f"same content as {row['duplicate_of']}"
    if row["kind"] == "image":
        return f"{row['mime']} {row['width']}x{row['height']}"
    if row["kind"] == "audio":
        return f"{row['mime']} {row['duration_s']:.1f}s"
    return ""


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for, in words.")],
    limit: Annotated[int, typer.Option(help="How many hits.")] = 10,
    kind: Annotated[str | None, typer.Option(help="image or audio")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable.")] = False,
) -> None:
    """Search by meaning through the running API and print the hits."""
    settings = _settings()
    api_url = f"http://{settings.api.host}:{settings.api.port}"
    params: dict[str, str | int] = {"q": query, "limit": limit}
    if kind:
        params["kind"] = kind
    try:
        response = httpx.get(f"{api_url}/v1/search", params=params, timeout=30)
    except httpx.HTTPError as exc:
        console.print(f"[red]the API at {api_url} is not reachable ({exc}); is glimpse up?[/red]")
        raise typer.Exit(1) from exc
    if response.status_code != 200:
        console.print(f"[red]{response.json().get('detail', response.text)}[/red]")
        raise typer.Exit(1)
    results = response.json()
    if as_json:
        out.print_json(json.dumps(results))
        return
    if not results["hits"]:
        out.print(f"no matches for {query!r}")
        return
    table = Table("#", "score", "key", "caption / transcript")
    for rank, hit in enumerate(results["hits"], start=1):
        similarity = "" if hit["similarity"] is None else f"{hit['similarity']:.2f}"
        if hit.get("weak"):
            similarity += " weak"  # shown, but it does not stand out: a guess
        text = hit["caption"] or hit.get("transcript") or ""
        table.add_row(str(rank), similarity, hit["key"], text[:90])
    out.print(table)


keys_app = typer.Typer(help="API keys: create, list, revoke.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(models_app, name="models")
app.add_typer(captioner_app, name="captioner")


@keys_app.command("create")
def keys_create(name: Annotated[str, typer.Argument(help="Who or what the key is for.")]) -> None:
    """Make a key; it is printed once and stored only as a hash."""
    from glimpse.db import keys

    settings = _resolved()
    assert settings.database.url
    with psycopg.connect(settings.database.url, row_factory=_dict_row()) as conn:
        key, secret = keys.create(conn, name)
    console.print(f"created key {key.prefix}… ({key.id}) for {name!r}; it is shown only now:")
    out.print(secret)


@keys_app.command("list")
def keys_list() -> None:
    """Every key with its state (the secrets themselves are not stored)."""
    from glimpse.db import keys

    settings = _resolved()
    assert settings.database.url
    with psycopg.connect(settings.database.url, row_factory=_dict_row()) as conn:
        rows = keys.list_all(conn)
    table = Table("id", "prefix", "name", "created", "last used", "state")
    for k in rows:
        table.add_row(str(k.id), k.prefix + "…", k.name, f"{k.created_at:%Y-%m-%d %H:%M}",
                      f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "never",
                      "revoked" if k.revoked_at else "active")  # fmt: skip
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(key: Annotated[str, typer.Argument(help="The key's id or its prefix.")]) -> None:
    """Revoke a key at once."""
    from glimpse.db import keys

    settings = _resolved()
    assert settings.database.url
    with psycopg.connect(settings.database.url, row_factory=_dict_row()) as conn:
        count = keys.revoke(conn, key.rstrip("…"))
    if not count:
        console.print(f"[red]no active key matches {key!r}[/red]")
        raise typer.Exit(1)
    console.print(f"revoked {count} key(s)")


app.add_typer(backfill_app, name="backfill")
app.add_typer(dlq_app, name="dlq")
app.add_typer(labels_app, name="labels")
app.command("repair")(repair_command)


@app.command("lag-exporter")
def lag_exporter(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of /metrics.")] = 9106,
) -> None:
    """Serve every pipeline group's consumer lag, read from the broker, on /metrics
    (for stages with no worker running; `glimpse up` runs one itself)."""
    from glimpse.lag_exporter import LagExporter

    exporter = LagExporter.of_pipeline(host, port, _resolved().kafka)
    exporter.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    signal.signal(signal.SIGINT, lambda _signum, _frame: stop.set())
    console.print(f"consumer lag on http://{host}:{exporter.port}/metrics")
    stop.wait()
    exporter.stop()


@app.command("reconcile")
def reconcile_command() -> None:
    """Re-send events for objects the pipeline has not recorded (lost notifications)."""
    from glimpse.bus import make_producer
    from glimpse.db.pool import open_pool
    from glimpse.reconcile import reconcile_deployment

    settings = _resolved()
    with open_pool(settings.database, "reconcile") as pool, pool.connection() as conn:
        producer = make_producer(settings.kafka)
        try:
            report = reconcile_deployment(ObjectStore(settings.s3), conn, producer, settings.kafka)
        finally:
            producer.close(10)
    out.print(
        f"{report.listed} objects listed; re-sent {report.created} created and "
        f"{report.deleted} deleted events"
    )


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        app()
