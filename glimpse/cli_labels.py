"""``glimpse labels``: your own label sets, trained on glimpse's visual vectors.

    glimpse labels train NAME --examples DIR     # one subfolder per label, images inside
    glimpse labels train NAME --csv FILE         # key,label for images already in the bucket
    glimpse labels list | show NAME
    glimpse labels activate NAME [--version N] [--unsure-below P]   # then tags stored items
    glimpse labels deactivate NAME | delete NAME
    glimpse labels review NAME                   # unsure tags, least sure first
    glimpse labels review NAME --correct KEY LABEL | --csv FILE

Every ``train`` makes a new version (corrections made in review are added to its
examples); ``activate`` makes a version tag new images (in the caption stage) and tags
the stored ones (a backfill job, stage ``labels``). scikit-learn and the captioner are
imported inside the commands: ``glimpse.cli`` imports this module for every command.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import psycopg
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from glimpse.cli_backfill import run_and_show
from glimpse.cli_common import connect, fail, resolved
from glimpse.config import Settings
from glimpse.db import backfill_jobs as jobs
from glimpse.db import label_sets, media, stage_models, vectors
from glimpse.db.backfill_jobs import JobSpec
from glimpse.db.label_sets import LabelSet, Version
from glimpse.db.vectors import VectorModel
from glimpse.labels import artifact
from glimpse.storage import ObjectStore

if TYPE_CHECKING:
    from glimpse.labels.examples import Gathered
    from glimpse.models.captioning import Captioner

labels_app = typer.Typer(
    help="Your own label sets: train on examples, tag the library, review unsure tags.",
    no_args_is_help=True,
)
console = Console(stderr=True)
out = Console()
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")

NameArg = Annotated[str, typer.Argument(help="The label set, e.g. pastries.")]


@labels_app.command()
def train(
    name: NameArg,
    examples: Annotated[
        Path | None, typer.Option(help="A folder with one subfolder of images per label.")
    ] = None,
    csv: Annotated[
        Path | None, typer.Option(help="key,label rows for images already in the bucket.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the held-out split.")] = 0,
) -> None:
    """Train a new version of NAME on the examples (and the corrections made in review),
    print its held-out accuracy, per-label precision/recall and confusion matrix, and
    save it (it tags nothing until activated)."""
    from glimpse.labels.examples import Gathered, from_corrections, from_keys, read_pairs
    from glimpse.labels.training import TrainingError
    from glimpse.labels.training import train as train_head

    if not _NAME.fullmatch(name):
        fail(f"{name!r} cannot name a label set: lowercase letters, digits, - and _ only")
    if examples is None and csv is None:
        fail("say where the examples are: --examples DIR (one folder per label) or --csv FILE")
    settings = resolved()
    store = ObjectStore(settings.s3)
    with connect(settings) as conn:
        visual = _active_visual(conn)
        gathered = Gathered()
        if examples is not None:
            gathered.extend(_from_folder(conn, settings, visual, examples))
        corrected = from_corrections(conn, name, visual)
        if csv is not None:
            try:
                pairs = read_pairs(csv)
            except (OSError, ValueError) as exc:
                fail(f"cannot read {csv}: {exc}")
            # a correction made in review wins over the same key's row in the file
            keys = {source.removeprefix("correction ") for source in corrected.sources}
            gathered.extend(from_keys(conn, settings.s3.bucket,
                                      [p for p in pairs if p[0] not in keys], visual))  # fmt: skip
        gathered.extend(corrected)
        _say_skipped(gathered)
        try:
            trained = train_head(
                gathered.examples(),
                visual.model,
                holdout=settings.labels.holdout,
                regularisation=settings.labels.regularisation,
                seed=seed,
            )
        except TrainingError as exc:
            fail(str(exc))
        _print_metrics(trained.metrics)
        with conn.transaction():  # the set's row stays locked until the version is recorded
            number = label_sets.next_version(conn, name, settings.labels.unsure_below)
            saved = artifact.Artifact(name, number, trained.head, trained.metrics)
            key, sha = artifact.save(store, saved)
            label_sets.add_version(
                conn, Version(name, number, visual.model, list(trained.head.classes),
                              trained.metrics, len(gathered.labels), key, sha, datetime.now(UTC))
            )  # fmt: skip
    seconds = trained.metrics["train_seconds"]
    out.print(
        f"saved {name} v{number} ({len(gathered.labels)} examples, trained in {seconds:.1f} s); "
        f"`glimpse labels activate {name}` makes it tag the library"
    )


@labels_app.command("list")
def list_sets(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every label set: active version, labels, held-out accuracy, tagged and unsure."""
    settings = resolved()
    with connect(settings) as conn:
        rows = [_summary(conn, s) for s in label_sets.all_sets(conn) if s.latest]
    if as_json:
        out.print_json(json.dumps(rows, default=str))
        return
    table = Table("set", "active", "latest", "labels", "accuracy", "tagged", "unsure")
    for r in rows:
        labels = ", ".join(r["classes"][:6]) + (" …" if len(r["classes"]) > 6 else "")
        table.add_row(r["name"], _v(r["active_version"]), _v(r["latest_version"]),
                      f"{len(r['classes'])}: {labels}", _pct(r["accuracy"]),
                      str(r["tagged"]), str(r["unsure"]))  # fmt: skip
    out.print(table)


@labels_app.command()
def show(name: NameArg, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """A set's versions, and the metrics of its active (else newest) version."""
    settings = resolved()
    with connect(settings) as conn:
        found = _set(conn, name)
        summary = _summary(conn, found)
        history = label_sets.versions(conn, name)
    if as_json:
        summary["versions"] = [{"version": v.version, "visual_model": v.visual_model,
                                "examples": v.examples, "metrics": v.metrics,
                                "created_at": v.created_at} for v in history]  # fmt: skip
        out.print_json(json.dumps(summary, default=str))
        return
    table = Table("version", "trained", "examples", "labels", "accuracy", "visual model", "")
    for v in history:
        table.add_row(str(v.version), v.created_at.isoformat()[:16], str(v.examples),
                      str(len(v.classes)), _pct(v.metrics.get("accuracy")), v.visual_model,
                      "active" if v.version == found.active_version else "")  # fmt: skip
    out.print(table)
    out.print(f"tagged {summary['tagged']}, unsure {summary['unsure']} (below "
              f"{found.unsure_below:.0%}), corrections {summary['corrections']}")  # fmt: skip
    shown = found.active or found.latest
    if shown:
        out.print(f"v{shown.version}:")
        _print_metrics(shown.metrics)


@labels_app.command()
def activate(
    name: NameArg,
    version: Annotated[int | None, typer.Option(help="Default: the newest.")] = None,
    unsure_below: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="Tags less confident are unsure.")
    ] = None,
    tag: Annotated[bool, typer.Option(help="Tag the stored images now.")] = True,
) -> None:
    """Make a version of NAME tag every new image, and tag the stored ones (a resumable
    backfill job: Ctrl-C stops it, `glimpse backfill --stage labels --missing --model
    NAME` resumes)."""
    settings = resolved()
    with connect(settings) as conn:
        found = _set(conn, name)
        chosen = label_sets.version(conn, name, version) if version else found.latest
        if chosen is None:
            fail(f"{name} has no version {version}: see `glimpse labels show {name}`")
        visual = _active_visual(conn)
        if chosen.visual_model != visual.model:
            fail(f"{name} v{chosen.version} was trained on {chosen.visual_model}'s vectors, "
                 f"but search serves {visual.model}: train it again")  # fmt: skip
        label_sets.activate(conn, name, chosen.version, unsure_below)
        out.print(f"{name} v{chosen.version} is active: new images are tagged with it")
        if not tag:
            return
        spec = JobSpec("labels", "missing", model=name)
        job = jobs.unfinished_like(conn, spec) or jobs.create(conn, spec)
    run_and_show(settings, job, wait=True, page_size=1000)


@labels_app.command()
def deactivate(name: NameArg) -> None:
    """Stop tagging with NAME and hide its tags (kept: activating it again shows them)."""
    settings = resolved()
    with connect(settings) as conn:
        _set(conn, name)
        label_sets.activate(conn, name, None, None)
    out.print(f"{name} no longer tags images")


@labels_app.command()
def delete(
    name: NameArg, yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False
) -> None:
    """Delete NAME: every version, its tags and corrections, its files in the bucket."""
    settings = resolved()
    if not yes:
        typer.confirm(f"delete label set {name}, its tags and corrections?", abort=True)
    with connect(settings) as conn:
        if not label_sets.delete(conn, name):
            fail(f"there is no label set {name!r}: see `glimpse labels list`")
    removed = artifact.delete_all(ObjectStore(settings.s3), name)
    out.print(f"deleted label set {name} ({removed} version files)")


@labels_app.command()
def review(
    name: NameArg,
    correct: Annotated[
        tuple[str, str] | None,
        typer.Option(metavar="KEY LABEL", help="Say what an item really is."),
    ] = None,
    csv: Annotated[Path | None, typer.Option(help="Corrections: key,label rows.")] = None,
    limit: Annotated[int, typer.Option(help="How many unsure tags to list.")] = 50,
    prefix: Annotated[str | None, typer.Option(help="Only keys under this prefix.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List NAME's unsure tags (least sure first), or record corrections: they become
    the items' tags now and training examples at the next `glimpse labels train`."""
    from glimpse.labels.examples import read_pairs

    settings = resolved()
    with connect(settings) as conn:
        found = _set(conn, name)
        if correct or csv:
            try:
                pairs = ([correct] if correct else []) + (read_pairs(csv) if csv else [])
            except (OSError, ValueError) as exc:
                fail(f"cannot read {csv}: {exc}")
            _correct(conn, settings, found, pairs)
            return
        unsure, total = label_sets.unsure(conn, name, limit, prefix)
    if as_json:
        rows = [{"key": u.key, "label": u.label, "confidence": u.confidence,
                 "alternatives": u.alternatives} for u in unsure]  # fmt: skip
        out.print_json(json.dumps({"unsure": rows, "total": total}))
        return
    table = Table("key", "label", "confidence", "or perhaps")
    for u in unsure:
        others = ", ".join(f"{label} {p:.0%}" for label, p in u.alternatives)
        table.add_row(u.key, u.label, f"{u.confidence:.0%}", others)
    out.print(table)
    out.print(f"{total} unsure tags (below {found.unsure_below:.0%}); correct one with "
              f"`glimpse labels review {name} --correct KEY LABEL`")  # fmt: skip


def _correct(
    conn: psycopg.Connection[Any], settings: Settings, found: LabelSet,
    pairs: list[tuple[str, str]],
) -> None:  # fmt: skip
    version = found.active or found.latest
    assert version is not None
    ids = {key: media.media_id(settings.s3.bucket, key) for key, _ in pairs}
    live = media.accepted_ids(conn, list(ids.values()))
    missing = [key for key in ids if ids[key] not in live]
    if missing:
        fail(f"no accepted image with key {', '.join(missing[:5])}: nothing recorded")
    with conn.transaction():
        for key, label in pairs:
            label_sets.correct(conn, found.name, version.version, ids[key], label)
    new = sorted({label for _, label in pairs} - set(version.classes))
    out.print(
        f"recorded {len(pairs)} corrections for {found.name}; they are training "
        "examples for the next `glimpse labels train`"
    )
    if new:
        out.print(f"new labels {', '.join(new)}: they become classes at the next train")


def _active_visual(conn: psycopg.Connection[Any]) -> VectorModel:
    visual = vectors.active_model(conn, "visual")
    if visual is None:
        fail("no visual model is registered yet: start glimpse (`glimpse up`) so the caption "
             "worker registers its model, then train")  # fmt: skip
    return visual


def _captioner(conn: psycopg.Connection[Any], settings: Settings, model: str) -> Captioner:
    """The captioner whose visual vectors search serves, loaded from its registry spec,
    so example vectors match the stored ones."""
    from glimpse.model_specs import settings_for
    from glimpse.models.captioning import load_captioner
    from glimpse.models.device import limit_cpu_threads

    limit_cpu_threads(settings.models.torch_threads)

    rows = stage_models.registered(conn, "visual", model)
    models = settings_for(settings.models, rows[0].spec) if rows else settings.models
    captioner = load_captioner(models)
    if captioner.model_id != model:
        fail(f"search serves {model}'s visual vectors, but the settings load "
             f"{captioner.model_id}: set GLIMPSE_MODELS__CAPTIONER to match")  # fmt: skip
    captioner.load()
    return captioner


def _from_folder(
    conn: psycopg.Connection[Any], settings: Settings, visual: VectorModel, root: Path
) -> Gathered:
    from glimpse.labels.examples import folder_files, from_folder

    try:
        total = len(folder_files(root))
    except FileNotFoundError as exc:
        fail(str(exc))
    if not total:
        fail(f"{root} has no label folders with files in them")
    captioner = _captioner(conn, settings, visual.model)
    columns = (TextColumn("visual vectors"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("", total=total)
        return from_folder(root, captioner, settings.limits,
                           lambda n: progress.advance(task, n))  # fmt: skip


def _say_skipped(gathered: Gathered) -> None:
    if not gathered.skipped:
        return
    console.print(f"[yellow]{len(gathered.skipped)} examples skipped[/yellow]")
    for what, why in gathered.skipped[:10]:
        console.print(f"  {what}: {why}")


def _print_metrics(metrics: dict[str, Any]) -> None:
    out.print(f"held-out accuracy {_pct(metrics.get('accuracy'))} on "
              f"{metrics.get('heldout_examples')} examples "
              f"(trained on {metrics.get('train_examples')})")  # fmt: skip
    per_label = Table("label", "precision", "recall", "held out", title="per label")
    for label, m in metrics.get("per_label", {}).items():
        per_label.add_row(label, _pct(m["precision"]), _pct(m["recall"]), str(m["support"]))
    out.print(per_label)
    confusion = metrics.get("confusion")
    if confusion:
        matrix = Table("true \\ predicted", *confusion["labels"], title="confusion matrix")
        for label, row in zip(confusion["labels"], confusion["matrix"], strict=True):
            matrix.add_row(label, *(str(n) if n else "·" for n in row))
        out.print(matrix)


def _set(conn: psycopg.Connection[Any], name: str) -> LabelSet:
    found = label_sets.get(conn, name)
    if found is None or found.latest is None:
        fail(f"there is no label set {name!r}: see `glimpse labels list`")
    return found


def _summary(conn: psycopg.Connection[Any], s: LabelSet) -> dict[str, Any]:
    shown = s.active or s.latest
    assert shown is not None
    counts = label_sets.counts(conn, s.name)
    return {
        "name": s.name, "active_version": s.active_version,
        "latest_version": s.latest.version if s.latest else None, "classes": shown.classes,
        "accuracy": shown.metrics.get("accuracy"), "visual_model": shown.visual_model,
        "unsure_below": s.unsure_below, "tagged": counts["tagged"],
        "unsure": counts["unsure"], "corrections": counts["corrected"],
    }  # fmt: skip


def _v(version: int | None) -> str:
    return "" if version is None else f"v{version}"


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"
