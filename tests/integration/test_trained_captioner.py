"""A captioner trained with `glimpse captioner train`, published to the bucket, run side
by side with the labels captioner on a real stack, and switched to: the caption stage
serves it, search shows and finds its captions. Its own stack: the switch changes what
every later search answers with."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from caption_shapes import draw, one_torch_thread, write_pairs
from harness import RunningStack, private_settings, running_stack
from helpers import api, connect, glimpse, row_for, store_of, wait_searchable
from PIL import Image

from glimpse.caption_pairs import load_images, read_pairs
from glimpse.caption_training import TrainingSettings, train, visual_vectors
from glimpse.config import ModelSettings
from glimpse.db.media import media_id
from glimpse.models import caption_artifact, load_captioner
from glimpse.stack.supervisor import service_env

# A stack of its own, a training and a second caption worker: generous on a busy machine.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[2]
LABELS = "labels/efficientnet-lite0"
UPLOADS = {"red-circle": ("red", "circle"), "blue-square": ("blue", "square"),
           "green-triangle": ("green", "triangle")}  # fmt: skip


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    with running_stack(private_settings(tmp_path_factory.mktemp("trained-home"))) as running:
        yield running


def train_shapes(folder: Path) -> Path:
    """An artifact trained on PNG files through the same pairs path the CLI takes."""
    pairs = read_pairs(write_pairs(folder, variants=4))
    with one_torch_thread():
        backbone = load_captioner(ModelSettings(device="cpu"))
        backbone.load()
        features = visual_vectors(backbone, load_images(pairs, 512))
        trained = train(features, pairs.captions, TrainingSettings(seed=1, epochs=25))
    config = {"backbone": backbone.model_id, "backbone_revision": backbone.revision, "seed": 1}
    metrics = trained.metrics(TrainingSettings(seed=1), 0.0)
    return caption_artifact.save(
        folder / "out", "shapes", trained.decoder, trained.vocab, config, metrics
    )


def start_side_by_side_captioner(
    stack: RunningStack, artifact_id: str, cache: Path, log: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        **service_env(stack.settings),
        "GLIMPSE_MODELS__CAPTIONER": "trained",
        "GLIMPSE_MODELS__TRAINED_CAPTIONER": artifact_id,
        # an empty cache: the worker fetches the artifact from the bucket by its id
        "GLIMPSE_MODELS__CACHE_DIR": str(cache),
        "GLIMPSE_MODELS__TORCH_THREADS": "1",
        "GLIMPSE_WORKER__HEALTH_PORT": "0",
        "PYTHONPATH": str(REPO),
    }
    command = [sys.executable, "-m", "services.caption", "--side-by-side"]
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)


def captions_of(stack: RunningStack, model: str) -> dict[str, str]:
    with connect(stack.settings) as conn:
        rows = conn.execute(
            "SELECT m.key, c.text FROM captions c JOIN media m ON m.id = c.media_id "
            "WHERE c.model = %(model)s",
            {"model": model},
        ).fetchall()
    return {r["key"]: r["text"] for r in rows}


def wait_captions(stack: RunningStack, model: str, keys: list[str], worker: subprocess.Popen[bytes],
                  log: Path) -> dict[str, str]:  # fmt: skip
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert worker.poll() is None, "the side-by-side captioner exited:\n" + log.read_text()
        found = captions_of(stack, model)
        if all(key in found for key in keys):
            return found
        time.sleep(0.5)
    raise AssertionError(f"no {model} captions for all of {keys}:\n{log.read_text()[-3000:]}")


def artifact_captions(stack: RunningStack, directory: Path, keys: list[str]) -> dict[str, str]:
    captioner = load_captioner(
        ModelSettings(captioner="trained", trained_captioner=str(directory), device="cpu")
    )
    store = store_of(stack.settings)
    thumbnails = []
    for key in keys:
        row = row_for(stack.settings, key)
        assert row is not None and row["thumbnail_key"]
        data = store.read(row["thumbnail_key"], 1 << 24)
        assert data is not None
        with Image.open(io.BytesIO(data)) as thumbnail:
            thumbnails.append(thumbnail.convert("RGB"))
    with one_torch_thread():
        captioner.load()
        found = captioner.predict(thumbnails)
    return {key: analysis.caption for key, analysis in zip(keys, found, strict=True)}


def text_vector_sources(stack: RunningStack, keys: list[str]) -> dict[str, str | None]:
    """Per key: the model whose text its text vector was made from."""
    ids = {str(media_id(stack.settings.s3.bucket, key)): key for key in keys}
    with connect(stack.settings) as conn:
        rows = conn.execute(
            "SELECT media_id::text AS id, source_model FROM embeddings "
            "WHERE kind = 'text' AND media_id = ANY(%(ids)s::uuid[])",
            {"ids": list(ids)},
        ).fetchall()
    return {ids[r["id"]]: r["source_model"] for r in rows}


def wait_text_vectors_of(stack: RunningStack, keys: list[str], model: str) -> None:
    deadline = time.monotonic() + 300
    while (found := text_vector_sources(stack, keys)) != dict.fromkeys(keys, model):
        assert time.monotonic() < deadline, f"text vectors never made from {model}: {found}"
        time.sleep(0.5)


def test_a_trained_captioner_fills_side_by_side_and_serves_once_activated(
    own_stack: RunningStack, tmp_path: Path
) -> None:
    s = own_stack.settings
    env = {**os.environ, **service_env(s), "COLUMNS": "300"}
    (tmp_path / "data").mkdir()
    directory = train_shapes(tmp_path / "data")
    store = store_of(s)
    caption_artifact.publish(store, directory)
    model = f"trained/{directory.name}"

    keys = []
    for name, (colour, shape) in UPLOADS.items():
        buffer = io.BytesIO()
        draw(colour, shape, 500).save(buffer, "PNG")
        keys.append(f"shapes/{name}.png")
        store.put(keys[-1], buffer.getvalue(), "image/png")
    wait_searchable(own_stack, keys)
    labels_captions = captions_of(own_stack, LABELS)

    log = tmp_path / "caption-side-by-side.log"
    worker = start_side_by_side_captioner(own_stack, directory.name, tmp_path / "cache", log)
    try:
        # its consumer groups are new: it reads the live topic from its start
        said = wait_captions(own_stack, model, keys, worker, log)
        # what the artifact says of the thumbnails the stage read (how well it names
        # shapes is tests/unit/test_caption_training.py's to show)
        assert said == artifact_captions(own_stack, directory, keys)
        assert (tmp_path / "cache" / "captioners" / directory.name).is_dir()

        # search still shows the active (labels) captions, its vectors say them too
        assert text_vector_sources(own_stack, keys) == dict.fromkeys(keys, LABELS)
        red = str(media_id(s.s3.bucket, keys[0]))
        before = httpx.get(f"{api(own_stack)}/v1/media/{red}", timeout=30).json()
        assert before["caption"] == labels_captions[keys[0]]

        switched = glimpse(env, "models", "activate", "captioner", model)
        assert switched.returncode == 0, switched.stderr
        assert "backfill job" in switched.stdout  # the text vectors are made again
        after = httpx.get(f"{api(own_stack)}/v1/media/{red}", timeout=30).json()
        assert after["caption"] == said[keys[0]]
        # full text now reads the trained captions: its words find the image
        hits = httpx.get(f"{api(own_stack)}/v1/search", params={"q": said[keys[0]]},
                         timeout=30).json()["hits"]  # fmt: skip
        assert hits and hits[0]["id"] == red
        assert hits[0]["caption"] == said[keys[0]]
        wait_text_vectors_of(own_stack, keys, model)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
