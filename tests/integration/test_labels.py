"""Custom label sets on a real stack, with real handwritten digits (scikit-learn's 1,797
8x8 scans, upscaled to dark-on-white PNGs): train through the CLI, activate (stored
images are tagged by the job), upload new digits (tagged by the caption stage), search
by label, review unsure tags, correct one and train again with it, delete."""

from __future__ import annotations

import io
import json
import os
import re
import threading
import time
import uuid
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from harness import RunningStack
from helpers import api, connect, glimpse, store_of, wait_searchable
from PIL import Image, ImageOps
from sklearn.datasets import load_digits

from glimpse.backfill import repair
from glimpse.bus import make_producer
from glimpse.db import label_sets
from glimpse.db.media import media_id
from glimpse.db.vectors import VectorModel
from glimpse.labels import artifact
from glimpse.labels.head import predict
from glimpse.stack.supervisor import service_env

# training computes a few hundred visual vectors on the CPU: minutes on a shared machine
pytestmark = [pytest.mark.integration, pytest.mark.timeout(2400)]

# examples per label in the folder the CLI trains on: 100 measured 94 % on unseen digits,
# 25 only 89 % (bench.labels)
TRAIN_PER_DIGIT = 100
UPLOAD_PER_DIGIT = 3  # digits uploaded before and after activation (not examples)


def digit_png(pixels: np.ndarray, size: int = 64, margin: int = 16) -> bytes:
    """An 8x8 scan (0-16, ink high) as a dark digit on white, upscaled, with a white
    margin as on paper (the captioner's centre crop then cuts no stroke)."""
    grey = (255 - pixels / 16 * 255).astype(np.uint8)
    image = Image.fromarray(grey, "L").resize((size, size), Image.Resampling.BICUBIC)
    out = io.BytesIO()
    ImageOps.expand(image, border=margin, fill=255).convert("RGB").save(out, "PNG")
    return out.getvalue()


def digit_indices(digits: Any, per_digit: int, skip: int) -> list[int]:
    return [int(i) for d in range(10)
            for i in np.flatnonzero(digits.target == d)[skip : skip + per_digit]]  # fmt: skip


def wait_tagged(
    stack: RunningStack, name: str, keys: list[str], timeout_s: float = 300
) -> dict[str, tuple[str, float]]:
    """(label, confidence) of each key once the set tagged them all."""
    ids = {media_id(stack.settings.s3.bucket, k): k for k in keys}
    deadline = time.monotonic() + timeout_s
    with connect(stack.settings) as conn:
        while True:
            rows = conn.execute(
                "SELECT media_id, label, confidence FROM media_labels "
                "WHERE label_set = %(set)s AND media_id = ANY(%(ids)s)",
                {"set": name, "ids": list(ids)},
            ).fetchall()
            if len(rows) == len(ids) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    tags = {ids[r["media_id"]]: (r["label"], float(r["confidence"])) for r in rows}
    assert len(tags) == len(keys), f"{len(keys) - len(tags)} of {len(keys)} never tagged"
    return tags


@dataclass(frozen=True)
class DigitSet:
    name: str
    prefix: str
    env: dict[str, str]
    trained: Any  # the `labels train` run
    accuracy: float
    before: dict[str, str]  # key -> true digit, uploaded before the set existed
    after: dict[str, str]  # uploaded once it was active
    tags: dict[str, tuple[str, float]]  # key -> (label, confidence) as tagged

    @property
    def truth(self) -> dict[str, str]:
        return {**self.before, **self.after}


@pytest.fixture(scope="module")
def digit_set(stack: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> DigitSet:
    """A digits set trained through the CLI on folders of examples and activated, with
    digits uploaded before it existed (tagged by activation) and after (by the caption
    stage)."""
    # one torch thread: on a shared 2-core machine more threads only contend
    env = {**os.environ, **service_env(stack.settings), "GLIMPSE_MODELS__TORCH_THREADS": "1"}
    digits = load_digits()
    name = f"digits-{uuid.uuid4().hex[:6]}"
    prefix = f"{name}/"
    store = store_of(stack.settings)
    examples = tmp_path_factory.mktemp("digit-examples")
    for i in digit_indices(digits, TRAIN_PER_DIGIT, skip=0):
        folder = examples / str(digits.target[i])
        folder.mkdir(exist_ok=True)
        (folder / f"{i}.png").write_bytes(digit_png(digits.images[i]))
    (examples / "3" / "notes.txt").write_text("not an image")

    def upload(part: str, skip: int) -> dict[str, str]:
        keys = {f"{prefix}{part}/{i}.png": str(digits.target[i])
                for i in digit_indices(digits, UPLOAD_PER_DIGIT, skip)}  # fmt: skip
        for key in keys:
            store.put(key, digit_png(digits.images[int(Path(key).stem)]), "image/png")
        return keys

    before = upload("before", skip=TRAIN_PER_DIGIT)
    wait_searchable(stack, list(before), timeout_s=300)
    began = time.monotonic()
    trained = glimpse(env, "labels", "train", name, "--examples", str(examples), timeout=900)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    found = re.search(r"held-out accuracy ([\d.]+)%", trained.stdout)
    assert found, trained.stdout
    accuracy = float(found[1]) / 100
    print(f"digits: held-out accuracy {accuracy:.1%}, `labels train` took "
          f"{time.monotonic() - began:.0f} s for {10 * TRAIN_PER_DIGIT} examples")  # fmt: skip

    activated = glimpse(env, "labels", "activate", name, timeout=600)
    assert activated.returncode == 0, activated.stdout + activated.stderr
    tags = wait_tagged(stack, name, list(before), timeout_s=60)
    after = upload("after", skip=TRAIN_PER_DIGIT + UPLOAD_PER_DIGIT)
    tags |= wait_tagged(stack, name, list(after))
    # tagged in the caption stage; searchable once embed has its text vector too
    wait_searchable(stack, list(after), timeout_s=300)
    return DigitSet(name, prefix, env, trained, accuracy, before, after, tags)


def test_training_prints_held_out_metrics_and_saves_a_version(digit_set: DigitSet) -> None:
    out, err = digit_set.trained.stdout, digit_set.trained.stderr
    assert digit_set.accuracy >= 0.9
    assert "per label" in out and "precision" in out and "confusion matrix" in out
    assert "1 examples skipped" in err and "notes.txt" in err  # said, not hidden
    assert f"saved {digit_set.name} v1 ({10 * TRAIN_PER_DIGIT} examples" in out


def test_stored_and_uploaded_digits_are_tagged_right(digit_set: DigitSet) -> None:
    right = {k: digit_set.tags[k][0] == v for k, v in digit_set.truth.items()}
    before = sum(right[k] for k in digit_set.before) / len(digit_set.before)
    after = sum(right[k] for k in digit_set.after) / len(digit_set.after)
    everything = sum(right.values()) / len(right)
    print(f"digits tagged right: {before:.0%} of those stored before (activation's job), "
          f"{after:.0%} of new uploads (caption stage), {everything:.0%} of all")  # fmt: skip
    # ~94 % expected: 60 digits leave room for two or three unlucky ones
    assert everything >= 0.85
    assert min(before, after) >= 0.75


def test_the_artifact_reloads_and_predicts_what_the_pipeline_stored(
    stack: RunningStack, digit_set: DigitSet
) -> None:
    store = store_of(stack.settings)
    keys = list(digit_set.after)
    with connect(stack.settings) as conn:
        version = label_sets.version(conn, digit_set.name, 1)
        assert version is not None
        ids = [media_id(stack.settings.s3.bucket, k) for k in keys]
        visual = VectorModel(version.visual_model, "visual", 1280)
        stored = label_sets.stored_vectors(conn, ids, visual)
    loaded = artifact.load(store, version.artifact_key, version.artifact_sha256)
    again = artifact.load(store, version.artifact_key, version.artifact_sha256)
    vectors = np.stack([stored[i] for i in ids])

    assert np.array_equal(loaded.head.coef, again.head.coef)
    assert predict(loaded.head, vectors) == predict(again.head, vectors)
    for key, ranked in zip(keys, predict(loaded.head, vectors, top=1), strict=True):
        label, confidence = digit_set.tags[key]
        assert ranked[0][0] == label
        assert ranked[0][1] == pytest.approx(confidence, rel=1e-6)  # stored as real


def search(stack: RunningStack, **params: Any) -> list[dict[str, Any]]:
    response = httpx.get(f"{api(stack)}/v1/search", params={"limit": 50, **params}, timeout=30)
    assert response.status_code == 200, response.text
    hits: list[dict[str, Any]] = response.json()["hits"]
    return hits


def test_search_filters_by_label_and_finds_the_label_by_name(
    stack: RunningStack, digit_set: DigitSet
) -> None:
    sevens = {k for k, (label, _) in digit_set.tags.items() if label == "7"}
    sure_sevens = {k for k in sevens if digit_set.tags[k][1] >= 0.5}  # unsure: no word match
    sure_seven = min(sure_sevens)

    # min_score: every full-text match shown (the per-query judgement shows at most four
    # that only match the words)
    by_name = search(stack, q="7", prefix=digit_set.prefix, min_score=-1)
    hit = next(h for h in by_name if h["key"] == sure_seven)
    filtered = search(stack, q="digit", prefix=digit_set.prefix, label="7", min_score=-1)
    too_sure = search(stack, q="digit", prefix=digit_set.prefix, label="7", min_confidence=1,
                      min_score=-1)  # fmt: skip
    details = httpx.get(f"{api(stack)}/v1/media/{media_id(stack.settings.s3.bucket, sure_seven)}")

    assert hit["custom_labels"][0]["label_set"] == digit_set.name
    assert hit["custom_labels"][0]["label"] == "7"
    assert "label" in hit["matched_in"]
    assert {h["key"] for h in by_name if "label" in h["matched_in"]} == sure_sevens
    assert {h["key"] for h in filtered} == sevens
    assert too_sure == []
    assert details.json()["custom_labels"][0]["label"] == "7"


def test_v1_labels_lists_the_set_with_its_metrics(stack: RunningStack, digit_set: DigitSet) -> None:
    listed = httpx.get(f"{api(stack)}/v1/labels", timeout=30).json()["label_sets"]
    mine = next(s for s in listed if s["name"] == digit_set.name)

    assert mine["active"] and mine["version"] == 1
    assert mine["accuracy"] == pytest.approx(digit_set.accuracy, abs=1e-3)
    assert mine["classes"] == [str(d) for d in range(10)]
    # every image of the library is tagged (the session's stack holds other tests' too)
    assert mine["tagged"] >= len(digit_set.truth)
    assert set(mine["per_label"]["7"]) == {"precision", "recall", "support"}


def test_a_picture_is_answered_with_what_the_active_set_says_it_shows(
    stack: RunningStack, digit_set: DigitSet
) -> None:
    # digits neither trained on nor uploaded: what the drawing pad sends, as PNG
    digits = load_digits()
    unseen = digit_indices(digits, 1, skip=TRAIN_PER_DIGIT + 2 * UPLOAD_PER_DIGIT)
    url = f"{api(stack)}/v1/labels/{digit_set.name}/predict"
    answers = [
        httpx.post(url, params={"top": 3}, content=digit_png(digits.images[i]),
                   headers={"Content-Type": "image/png"}, timeout=60)
        for i in unseen
    ]  # fmt: skip
    assert [a.status_code for a in answers] == [200] * len(unseen), answers[0].text
    predicted = [a.json() for a in answers]
    said = [(p["labels"][0]["label"], str(digits.target[i]))
            for p, i in zip(predicted, unseen, strict=True)]  # fmt: skip
    assert sum(label == truth for label, truth in said) >= 8, said  # held-out accuracy ~96 %
    for answer in predicted:
        assert (answer["label_set"], answer["version"]) == (digit_set.name, 1)
        confidences = [label["confidence"] for label in answer["labels"]]
        assert len(confidences) == 3 and confidences == sorted(confidences, reverse=True)
        assert answer["unsure"] == (confidences[0] < 0.5)

    picture = {"content": digit_png(digits.images[unseen[0]]),
               "headers": {"Content-Type": "image/png"}}  # fmt: skip
    unknown = httpx.post(f"{api(stack)}/v1/labels/no-such-set/predict", **picture)
    assert unknown.status_code == 404 and "no-such-set" in unknown.json()["detail"]
    not_a_picture = httpx.post(url, content=b"seven", headers={"Content-Type": "text/plain"})
    assert not_a_picture.status_code == 415


def test_unsure_tags_are_listed_and_a_correction_trains_the_next_version(
    stack: RunningStack, digit_set: DigitSet, tmp_path: Path
) -> None:
    name, env = digit_set.name, digit_set.env
    # the threshold at the median confidence: half the tags are unsure
    confidences = sorted(c for _, c in digit_set.tags.values())
    threshold = confidences[len(confidences) // 2]
    assert glimpse(env, "labels", "activate", name, "--unsure-below", str(threshold),
                   "--no-tag").returncode == 0  # fmt: skip
    review = glimpse(env, "labels", "review", name, "--json", "--limit", "100",
                     "--prefix", digit_set.prefix)  # fmt: skip
    assert review.returncode == 0, review.stderr
    unsure = json.loads(review.stdout)
    expected = sorted((c, k) for k, (_, c) in digit_set.tags.items()
                      if np.float32(c) < np.float32(threshold))  # fmt: skip
    assert unsure["total"] == len(expected) > 0
    assert [u["key"] for u in unsure["unsure"]] == [k for _, k in expected]
    least_sure = expected[0][1]
    media_url = f"{api(stack)}/v1/media/{media_id(stack.settings.s3.bucket, least_sure)}"
    assert httpx.get(media_url).json()["custom_labels"][0]["unsure"] is True

    truth = digit_set.truth[least_sure]
    fixed = glimpse(env, "labels", "review", name, "--correct", least_sure, truth)
    assert fixed.returncode == 0, fixed.stderr
    assert httpx.get(media_url).json()["custom_labels"][0] == {
        "label_set": name, "label": truth, "confidence": 1.0, "unsure": False, "corrected": True
    }  # fmt: skip
    # the next version: keys already in the bucket, plus the correction
    rows = [(k, v) for k, v in digit_set.after.items() if k != least_sure]
    csv = tmp_path / "bucket.csv"
    csv.write_text("key,label\n" + "".join(f"{k},{v}\n" for k, v in rows))
    retrained = glimpse(env, "labels", "train", name, "--csv", str(csv))
    assert retrained.returncode == 0, retrained.stdout + retrained.stderr
    assert f"saved {name} v2 ({len(rows) + 1} examples" in retrained.stdout
    with connect(stack.settings) as conn:
        v2 = label_sets.version(conn, name, 2)
    assert v2 is not None and v2.examples == len(rows) + 1


def test_repair_tags_an_image_the_set_missed(stack: RunningStack, digit_set: DigitSet) -> None:
    # As if caption had handled these before its workers picked the new set up.
    s = stack.settings
    missed = sorted(digit_set.after)[:3]
    ids = [media_id(s.s3.bucket, key) for key in missed]
    with connect(s) as conn:
        conn.execute(
            "DELETE FROM media_labels WHERE label_set = %(set)s AND media_id = ANY(%(ids)s)",
            {"set": digit_set.name, "ids": ids},
        )
    with connect(s) as conn, closing(make_producer(s.kafka)) as producer:
        sent = repair(conn, producer, store_of(s), s.kafka, 0, threading.Event())

    assert sent["labels"] >= len(missed)
    assert wait_tagged(stack, digit_set.name, missed, timeout_s=5) == {
        key: digit_set.tags[key] for key in missed
    }


def test_delete_removes_the_set_its_tags_and_files(
    stack: RunningStack, digit_set: DigitSet
) -> None:
    deleted = glimpse(digit_set.env, "labels", "delete", digit_set.name, "--yes")
    assert deleted.returncode == 0, deleted.stderr

    listed = httpx.get(f"{api(stack)}/v1/labels", timeout=30).json()["label_sets"]
    assert digit_set.name not in [s["name"] for s in listed]
    assert list(store_of(stack.settings).list(f"{artifact.PREFIX}{digit_set.name}/")) == []
    assert search(stack, q="digit", prefix=digit_set.prefix, label="7", min_score=-1) == []
    with connect(stack.settings) as conn:
        left = conn.execute(
            "SELECT count(*) AS n FROM media_labels WHERE label_set = %(s)s",
            {"s": digit_set.name},
        ).fetchone()
    assert left is not None and left["n"] == 0
