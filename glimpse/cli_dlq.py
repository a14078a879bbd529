"""``glimpse dlq``: what the stages dead-lettered, and sending it through again.

    glimpse dlq list [--stage caption] [--reason crashed_worker] [--retried]
    glimpse dlq show KEY|ID        # every failure of one item, with its media row
    glimpse dlq retry [--stage S] [--reason R] [--id ID]   # after fixing the cause
    glimpse dlq purge [--stage S] [--reason R] --yes       # forget failures (records only)

The records are the ``media_failures`` rows the workers write next to each message
they send to ``glimpse.dlq``. A message with no media item to name (a malformed event,
a voice query) is only on the topic.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from glimpse.cli_common import connect, fail, producer, resolved
from glimpse.config import Settings
from glimpse.db import failures
from glimpse.db.failures import Failure, Selection
from glimpse.db.media import media_id
from glimpse.redrive import redrive
from glimpse.storage import ObjectStore

dlq_app = typer.Typer(
    help="Dead-lettered items: list, show, retry after a fix, purge.", no_args_is_help=True
)
out = Console()
console = Console(stderr=True)

StageOption = Annotated[
    str | None, typer.Option(help="Only this stage: ingest, caption, transcribe, embed.")
]
ReasonOption = Annotated[
    str | None, typer.Option(help="Only this reason, e.g. processing_error, crashed_worker.")
]
IdOption = Annotated[str | None, typer.Option("--id", help="Only this item: its key or id.")]


@dlq_app.command("list")
def list_failures(
    stage: StageOption = None,
    reason: ReasonOption = None,
    retried: Annotated[bool, typer.Option(help="Also those re-driven already.")] = False,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable.")] = False,
) -> None:
    """Failed items with their stage, reason, error and attempts."""
    settings = resolved()
    with connect(settings) as conn:
        found = failures.select(conn, _selection(settings, stage, reason, None, retried), limit)
    if as_json:
        out.print_json(json.dumps([asdict(f) for f in found], default=str))
        return
    if not found:
        out.print("no dead-lettered items" + (" (try --retried)" if not retried else ""))
        return
    table = Table("key", "stage", "reason", "error", "attempts", "failed", "retried")
    for f in found:
        table.add_row(f.key, f.stage, f.reason, f"{f.error_type}: {f.message}"[:80],
                      str(f.attempts), f"{f.failed_at:%Y-%m-%d %H:%M}",
                      f"{f.retried_at:%Y-%m-%d %H:%M}" if f.retried_at else "")  # fmt: skip
    out.print(table)


@dlq_app.command("show")
def show(item: Annotated[str, typer.Argument(help="The item's key or id.")]) -> None:
    """Every failure of one item, in full, and what its media row says."""
    settings = resolved()
    ids = [_media_id(settings, item)]
    with connect(settings) as conn:
        found = failures.select(conn, _selection(settings, None, None, ids, True))
        row = conn.execute(
            "SELECT key, status, reason, reason_detail FROM media WHERE id = %(id)s",
            {"id": ids[0]},
        ).fetchone()
    if row is None:
        fail(f"no media item {item}")
    why = f" ({row['reason']}: {row['reason_detail']})" if row["reason"] else ""
    out.print(f"{row['key']}: {row['status']}{why}")
    if not found:
        out.print("no dead-lettered stage")
    for f in found:
        out.print(_described(f))


@dlq_app.command("retry")
def retry(stage: StageOption = None, reason: ReasonOption = None, id_: IdOption = None) -> None:
    """Send failed items through their stage again (after fixing the cause)."""
    settings = resolved()
    ids = [_media_id(settings, id_)] if id_ else None
    which = _selection(settings, stage, reason, ids, retried=id_ is not None)
    with connect(settings) as conn, producer(settings) as sender:
        sent = redrive(conn, sender, ObjectStore(settings.s3), settings.kafka, which)
    if not sent:
        out.print("nothing to retry")
        return
    out.print("sent again: " + ", ".join(f"{stage} {n}" for stage, n in sent.items())
              + "; `glimpse dlq list` shows what fails again")  # fmt: skip


@dlq_app.command("purge")
def purge(
    stage: StageOption = None,
    reason: ReasonOption = None,
    retried: Annotated[bool, typer.Option(help="Also those re-driven already.")] = True,
    yes: Annotated[bool, typer.Option("--yes", help="Do it without asking.")] = False,
) -> None:
    """Forget failure records (the items stay as they are)."""
    settings = resolved()
    which = _selection(settings, stage, reason, None, retried)
    if not yes and not typer.confirm("forget these failure records?", default=False):
        raise typer.Exit(1)
    with connect(settings) as conn:
        out.print(f"forgot {failures.purge(conn, which)} failure record(s)")


def _described(f: Failure) -> str:
    retried = f"; re-driven {f.retried_at:%Y-%m-%d %H:%M:%S}" if f.retried_at else ""
    return (
        f"  {f.stage}: {f.reason} after {f.attempts} attempt(s) at "
        f"{f.failed_at:%Y-%m-%d %H:%M:%S}{retried}\n    {f.error_type}: {f.message}\n"
        f"    from {f.origin}"
    )


def _selection(
    settings: Settings, stage: str | None, reason: str | None,
    ids: list[uuid.UUID] | None, retried: bool,
) -> Selection:  # fmt: skip
    return Selection(settings.s3.bucket, stage, reason, ids, retried)


def _media_id(settings: Settings, item: str) -> uuid.UUID:
    try:
        return uuid.UUID(item)
    except ValueError:
        return media_id(settings.s3.bucket, item)
