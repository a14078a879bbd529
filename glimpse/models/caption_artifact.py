"""A trained captioner on disk (and in the bucket): weights, words, config, metrics.

    <cache>/captioners/<name>-<revision>/
        decoder.safetensors   the decoder's weights (tensors only: nothing runs on load)
        vocab.json            its words, index = token id
        config.json           decoder shape, the backbone it was trained on, the seed
        metrics.json          per-epoch losses and BLEU-4, the split, the training time

The artifact id ``<name>-<revision>`` is its version: the revision is a hash of the
weights, words and config, so retraining with other data or settings gives a new id
(and a new model id, ``trained/<id>``, registered beside the old one), while the same
data, settings and seed give the same id again. In the bucket an artifact lives under
``.glimpse/models/captioners/<id>/`` (a derived prefix: ingest never reads it), so a
worker on another host finds it by its id.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors.torch import load_file, save_file

from glimpse.models.caption_decoder import CaptionDecoder, DecoderConfig
from glimpse.models.caption_vocab import Vocabulary
from glimpse.models.revision import file_revision

if TYPE_CHECKING:
    from glimpse.storage import ObjectStore

WEIGHTS, VOCAB, CONFIG, METRICS = "decoder.safetensors", "vocab.json", "config.json", "metrics.json"
# What makes the model: hashed into its revision (metrics hold times, which vary).
_DEFINING = (WEIGHTS, VOCAB, CONFIG)
FILES = (*_DEFINING, METRICS)
BUCKET_PREFIX = ".glimpse/models/captioners/"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*(?:-[a-z0-9_]+)*$")
_MAX_FILE_BYTES = 512 * 1024 * 1024


class ArtifactError(RuntimeError):
    """The artifact is missing, incomplete or not one this code can load; says which."""


def check_name(name: str) -> str:
    if not _NAME.match(name) or len(name) > 64:
        raise ArtifactError(
            f"captioner name {name!r}: use lower-case letters, digits, '_' and '-' (max 64)"
        )
    return name


@dataclass(frozen=True, slots=True)
class Artifact:
    directory: Path
    decoder: CaptionDecoder  # in eval mode
    vocab: Vocabulary
    config: dict[str, Any]  # config.json: "decoder", "backbone", "seed", "name"
    metrics: dict[str, Any]

    @property
    def id(self) -> str:
        return self.directory.name

    @property
    def revision(self) -> str:
        return revision_of(self.directory)


def revision_of(directory: Path) -> str:
    return file_revision([directory / name for name in _DEFINING])


def save(
    root: Path,
    name: str,
    decoder: CaptionDecoder,
    vocab: Vocabulary,
    config: dict[str, Any],
    metrics: dict[str, Any],
) -> Path:
    """Write the artifact under ``root`` as ``<name>-<revision>/`` and return that
    directory; saving the same model again changes nothing."""
    check_name(name)
    with _staging(root, name) as staging:
        state = {k: v.detach().cpu().contiguous() for k, v in decoder.state_dict().items()}
        save_file(state, str(staging / WEIGHTS))
        _write_json(staging / VOCAB, vocab.to_json())
        _write_json(staging / CONFIG, {**config, "name": name,
                                       "decoder": decoder.config.to_json()})  # fmt: skip
        _write_json(staging / METRICS, metrics)
        return _place(staging, root / f"{name}-{revision_of(staging)}")


@contextmanager
def _staging(root: Path, name: str) -> Iterator[Path]:
    """A temporary directory beside the artifacts: written there, renamed into place
    (``_place``), so a reader never sees half an artifact; removed if anything fails."""
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already once placed


def _place(staging: Path, final: Path) -> Path:
    # Already there: the same content (the name holds its hash), by another writer.
    if not final.is_dir():
        staging.rename(final)
    return final


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def load(directory: Path) -> Artifact:
    """The artifact in ``directory``, its decoder in eval mode on the CPU."""
    missing = [name for name in FILES if not (directory / name).is_file()]
    if missing:
        raise ArtifactError(f"{directory} is not a captioner artifact: missing {missing}")
    try:
        config = json.loads((directory / CONFIG).read_text())
        vocab = Vocabulary.from_json(json.loads((directory / VOCAB).read_text()))
        metrics = json.loads((directory / METRICS).read_text())
        decoder = CaptionDecoder(DecoderConfig.from_json(config["decoder"]))
        decoder.load_state_dict(load_file(str(directory / WEIGHTS)))
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise ArtifactError(f"{directory}: cannot load the captioner ({exc})") from exc
    if decoder.config.vocab_size != len(vocab):
        raise ArtifactError(f"{directory}: the decoder and vocab.json do not match")
    return Artifact(directory, decoder.eval(), vocab, config, metrics)


def locate(source: str, cache_root: Path, store: ObjectStore | None = None) -> Path:
    """The directory of ``source``: a directory path, or an artifact id looked up in
    ``cache_root/captioners`` and else fetched from the bucket into it."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if "/" in source or not source:
        raise ArtifactError(f"trained captioner {source!r}: no such directory")
    local = cache_root / "captioners" / source
    if local.is_dir():
        return local
    if store is None:
        raise ArtifactError(
            f"trained captioner {source!r} is not in {local.parent} and no bucket was given "
            "to fetch it from"
        )
    return fetch(store, source, cache_root)


def fetch(store: ObjectStore, artifact_id: str, cache_root: Path) -> Path:
    """Download the artifact ``artifact_id`` from the bucket into the cache, checked
    against the hash its id names."""
    root = cache_root / "captioners"
    with _staging(root, artifact_id) as staging:
        for name in FILES:
            if not store.download(f"{BUCKET_PREFIX}{artifact_id}/{name}", staging / name,
                                  _MAX_FILE_BYTES):  # fmt: skip
                raise ArtifactError(
                    f"trained captioner {artifact_id!r}: not in {root} nor in the bucket "
                    f"(s3://{store.bucket}/{BUCKET_PREFIX}{artifact_id}/{name} is missing)"
                )
        if not artifact_id.endswith("-" + revision_of(staging)):
            raise ArtifactError(f"{artifact_id} in the bucket does not match its id")
        return _place(staging, root / artifact_id)


def publish(store: ObjectStore, directory: Path) -> str:
    """Upload the artifact to the bucket; its key prefix."""
    prefix = f"{BUCKET_PREFIX}{directory.name}/"
    for name in FILES:
        content_type = "application/json" if name.endswith(".json") else "application/octet-stream"
        store.put(prefix + name, (directory / name).read_bytes(), content_type)
    return prefix
