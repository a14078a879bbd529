"""Chaos: ``kill -9`` parts of a running embedded stack under steady uploads.

Used by ``python -m bench.chaos`` (every fault, recorded in bench/RESULTS.md) and by
the short version in the test suite (tests/integration/test_chaos.py).

Per fault: wait until the pipeline commits steadily, SIGKILL the fault's processes
(all at once when there are several), then measure the seconds from the kill to the
**next committed batch** of every watched worker: a worker's own kill is watched on
that worker; a server's on the image pipeline (ingest, caption, embed), which needs
them all. A commit is read from the worker's ``glimpse_worker_last_commit_timestamp_seconds``
(polled every 0.2 s); commits in the first second after the kill are not counted:
they are batches stored before it (no process restarts and serves within a second).

At the end every uploaded image must have exactly one media row (accepted), one
caption, and one text and one visual vector per active model; each audio clip one
final media row, and if accepted one transcript and one text vector.
"""

from __future__ import annotations

import io
import itertools
import logging
import math
import os
import signal
import struct
import threading
import time
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from psycopg.rows import dict_row

from glimpse.config import Settings
from glimpse.db.media import media_id
from glimpse.stack.ports import worker_health_ports
from glimpse.stack.supervision import PartState
from glimpse.stack.supervisor import EmbeddedStack
from glimpse.storage import ObjectStore

log = logging.getLogger(__name__)

IMAGE_PIPELINE = ("ingest", "caption", "embed")
#: commits this soon after a kill are batches stored before it
NOT_BEFORE_S = 1.0


@dataclass(frozen=True, slots=True)
class Fault:
    name: str
    kill: tuple[str, ...]
    watch: tuple[str, ...]


def worker_fault(name: str) -> Fault:
    return Fault(name, (name,), (name,))


def server_fault(*names: str) -> Fault:
    return Fault(" + ".join(names), names, IMAGE_PIPELINE)


#: every kind of process, then the three servers a host crash takes down together
ALL_FAULTS = (
    *(worker_fault(w) for w in ("ingest", "caption", "embed", "transcribe", "transcribe-queries")),
    server_fault("postgres"),
    server_fault("broker"),
    server_fault("s3-broker"),
    server_fault("s3-media"),
    server_fault("postgres", "broker", "s3-media"),
)
#: the test suite's short run: the image pipeline and its servers
SHORT_FAULTS = (
    *(worker_fault(w) for w in IMAGE_PIPELINE),
    server_fault("postgres"),
    server_fault("broker"),
    server_fault("s3-media"),
    server_fault("postgres", "broker", "s3-media"),
)


@dataclass
class Recovery:
    fault: Fault
    killed_at: float  # time.time()
    # seconds from the kill to each watched worker's next committed batch (None: not
    # within the timeout)
    per_worker: dict[str, float | None]

    @property
    def seconds(self) -> float | None:
        values = list(self.per_worker.values())
        return None if None in values else max(v for v in values if v is not None)


def unique_png(seed: int) -> bytes:
    """A small photo-like PNG whose bytes differ for every seed (no duplicates)."""
    image = Image.new("RGB", (96, 72), ((seed * 37) % 256, (seed * 91) % 256, (seed // 256) % 256))
    image.putpixel((seed % 96, seed // 96 % 72), (seed % 251, 255 - seed % 256, 7))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def tone_wav(seed: int, seconds: float = 1.5, rate: int = 16_000) -> bytes:
    """A short WAV of a warbling tone, different per seed. Whisper's VAD may hear no
    speech in it (``rejected: no_speech``): either way the transcribe worker commits."""
    base = 150 + (seed % 5000) / 20  # a different pitch per seed: no two clips alike
    frames = b"".join(
        struct.pack(
            "<h",
            int(9000 * math.sin(2 * math.pi * base * t / rate * (1 + 0.3 * math.sin(t / 900)))),
        )
        for t in range(int(seconds * rate))
    )
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return out.getvalue()


class SteadyLoad(threading.Thread):
    """Uploads an image every ``interval_s`` (and a clip and a voice query every
    ``audio_every`` images, if set), retrying each until it is stored: a PUT that fails
    while S3 is down is put again, with the same bytes."""

    def __init__(
        self,
        settings: Settings,
        prefix: str,
        interval_s: float = 0.3,
        audio_every: int = 0,
        api_key: str | None = None,
    ) -> None:
        super().__init__(name="steady-load", daemon=True)
        self.store = ObjectStore(settings.s3)
        self.api = f"http://{settings.api.host}:{settings.api.port}"
        self.prefix = prefix
        self.interval_s = interval_s
        self.audio_every = audio_every
        self.api_key = api_key
        self.images: list[str] = []
        self.clips: list[str] = []
        self.uploaded_at: dict[str, float] = {}  # key → time.time() of its PUT
        self.voice_queries = 0
        self.failed_puts = 0
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def run(self) -> None:
        for n in itertools.count():
            if self._halt.wait(self.interval_s):
                return
            key = f"{self.prefix}img-{n:05}.png"
            if self._put(key, unique_png(n + 7_000_000), "image/png"):
                self.images.append(key)
                self.uploaded_at[key] = time.time()
            if self.audio_every and n % self.audio_every == 0:
                clip = tone_wav(n)
                key = f"{self.prefix}clip-{n:05}.wav"
                if self._put(key, clip, "audio/wav"):
                    self.clips.append(key)
                    self.uploaded_at[key] = time.time()
                self._voice_query(clip)

    def _put(self, key: str, data: bytes, mime: str) -> bool:
        while not self._halt.is_set():
            try:
                self.store.put(key, data, mime)
                return True
            except Exception as exc:
                self.failed_puts += 1
                log.info("PUT %s failed (%r); again", key, exc)
                self._halt.wait(0.5)
        return False

    def _voice_query(self, clip: bytes) -> None:
        headers = {"Content-Type": "audio/wav"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        try:
            httpx.post(f"{self.api}/v1/search/voice", content=clip, headers=headers, timeout=1.0)
            self.voice_queries += 1
        except httpx.HTTPError:
            # the query is queued before the answer: a timeout here is no loss
            self.voice_queries += 1


class CommitWatch(threading.Thread):
    """Polls the workers' /metrics: when each worker committed a batch, per worker (the
    moment its committed-batch count was seen to change; the last-commit gauge cannot
    tell, a worker sets it when it starts)."""

    def __init__(self, ports: dict[str, int], poll_s: float = 0.2) -> None:
        super().__init__(name="commit-watch", daemon=True)
        self.ports = ports
        self.poll_s = poll_s
        self.commits: dict[str, list[float]] = {name: [] for name in ports}
        self._counts: dict[str, float] = {}
        self._halt = threading.Event()
        self._client = httpx.Client(timeout=1.0)

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def run(self) -> None:
        while not self._halt.wait(self.poll_s):
            for name, port in self.ports.items():
                count = self._batches(port)
                # a restarted worker counts from 0 again: any change is a new commit
                if count is not None and count != self._counts.get(name):
                    if name in self._counts:
                        self.commits[name].append(time.time())
                    self._counts[name] = count

    def first_after(self, name: str, moment: float) -> float | None:
        return next((t for t in self.commits[name] if t >= moment), None)

    def _batches(self, port: int) -> float | None:
        """Batches the worker committed since it started; None before its first."""
        try:
            text = self._client.get(f"http://127.0.0.1:{port}/metrics").text
        except httpx.HTTPError:
            return None
        for family in text_string_to_metric_families(text):
            if family.name == "glimpse_worker_batch_seconds":
                counts = [s.value for s in family.samples if s.name.endswith("_count")]
                return sum(counts) if counts else None
        return None


def worker_ports(settings: Settings) -> dict[str, int]:
    return worker_health_ports(settings.stack)


@dataclass
class ChaosRun:
    """Kills each fault's processes in turn on a running stack; see the module doc."""

    stack: EmbeddedStack
    settings: Settings
    faults: Sequence[Fault]
    timeout_s: float = 120.0
    say: Callable[[str], None] = print
    recoveries: list[Recovery] = field(default_factory=list)

    def run(self, watch: CommitWatch) -> list[Recovery]:
        for fault in self.faults:
            self._steady(watch, fault.watch)
            killed_at = self._kill(fault)
            recovery = self._recovery(watch, fault, killed_at)
            self.recoveries.append(recovery)
            shown = "not recovered" if recovery.seconds is None else f"{recovery.seconds:.1f}s"
            self.say(f"kill -9 {fault.name}: next committed batch after {shown}")
            self._all_ready()
        return self.recoveries

    def _steady(self, watch: CommitWatch, workers: Sequence[str]) -> None:
        """Every watched worker committed within the last 3 s (or 60 s have passed)."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = time.time()
            if all(watch.first_after(w, now - 3) is not None for w in workers):
                return
            time.sleep(0.2)

    def _kill(self, fault: Fault) -> float:
        pids = [self.stack.part(name).process.pid for name in fault.kill]
        killed_at = time.time()
        for pid in pids:
            if pid:
                os.kill(pid, signal.SIGKILL)
        return killed_at

    def _recovery(self, watch: CommitWatch, fault: Fault, killed_at: float) -> Recovery:
        deadline = time.monotonic() + self.timeout_s
        per_worker: dict[str, float | None] = dict.fromkeys(fault.watch)
        while time.monotonic() < deadline and None in per_worker.values():
            for name in fault.watch:
                if per_worker[name] is None:
                    seen = watch.first_after(name, killed_at + NOT_BEFORE_S)
                    per_worker[name] = None if seen is None else seen - killed_at
            time.sleep(0.1)
        return Recovery(fault, killed_at, per_worker)

    def _all_ready(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(p.state is PartState.READY for p in self.stack.parts):
                return
            time.sleep(0.2)


def quick_repair(settings: Settings) -> Settings:
    """Stage repair every 15 s for items untouched 45 s: a message the broker lost in a
    kill is announced again while the run waits for completion (defaults: 5 / 10 min)."""
    settings.stack.repair_interval_s = 15.0
    settings.stack.repair_after_s = 45.0
    return settings


@dataclass(frozen=True, slots=True)
class Completeness:
    images: int
    images_complete: int
    clips: int
    clips_final: int
    problems: list[str]


def completeness(settings: Settings, images: Sequence[str], clips: Sequence[str]) -> Completeness:
    """Each image: one accepted media row, one caption, one text and one visual vector
    per active model; each clip: one final row, and if accepted its transcript and text
    vector. ``problems`` names what is off (empty when everything is in)."""
    bucket = settings.s3.bucket
    image_ids = [str(media_id(bucket, k)) for k in images]
    clip_ids = [str(media_id(bucket, k)) for k in clips]
    assert settings.database.url
    with psycopg.connect(settings.database.url, row_factory=dict_row) as conn:
        active = conn.execute(
            "SELECT model, role AS kind FROM stage_models "
            "WHERE active AND role IN ('text', 'visual')"
        ).fetchall()
        rows = conn.execute(
            "SELECT m.id::text AS id, m.key, m.status, m.reason, "
            " (SELECT count(*) FROM captions c WHERE c.media_id = m.id) AS captions, "
            " (SELECT count(*) FROM transcripts t WHERE t.media_id = m.id) AS transcripts, "
            " (SELECT coalesce(jsonb_object_agg(e.model || '/' || e.kind, 1), '{}') "
            "    FROM embeddings e WHERE e.media_id = m.id) AS vectors "
            "FROM media m WHERE m.id = ANY(%(ids)s::uuid[])",
            {"ids": image_ids + clip_ids},
        ).fetchall()
    by_id: dict[str, dict[str, Any]] = {r["id"]: r for r in rows}
    wanted_vectors = {f"{a['model']}/{a['kind']}" for a in active}
    text_vectors = {f"{a['model']}/{a['kind']}" for a in active if a["kind"] == "text"}
    problems: list[str] = []
    complete = 0
    for mid, key in zip(image_ids, images, strict=True):
        row = by_id.get(mid)
        if row is None:
            problems.append(f"{key}: no media row")
        elif row["status"] != "accepted" or row["captions"] != 1:
            problems.append(f"{key}: {row['status']}, {row['captions']} captions")
        elif not wanted_vectors <= set(row["vectors"]):
            problems.append(f"{key}: vectors {sorted(row['vectors'])}")
        else:
            complete += 1
    final = 0
    for mid, key in zip(clip_ids, clips, strict=True):
        row = by_id.get(mid)
        if row is None or row["status"] not in {"accepted", "rejected", "duplicate"}:
            problems.append(f"{key}: {row['status'] if row else 'no media row'}")
        elif row["status"] == "accepted" and (
            row["transcripts"] != 1 or not text_vectors <= set(row["vectors"])
        ):
            problems.append(f"{key}: accepted, {row['transcripts']} transcripts")
        else:
            final += 1
    return Completeness(len(images), complete, len(clips), final, problems)


def wait_complete(
    settings: Settings, images: Sequence[str], clips: Sequence[str], timeout_s: float = 180
) -> Completeness:
    deadline = time.monotonic() + timeout_s
    while True:
        found = completeness(settings, images, clips)
        if not found.problems or time.monotonic() > deadline:
            return found
        time.sleep(1.0)


def during(recoveries: Sequence[Recovery], moment: float) -> str:
    """Which fault a moment (e.g. an upload) followed, in words, for failure messages."""
    before = [r for r in recoveries if r.killed_at <= moment]
    if not before:
        return "before the first kill"
    last = before[-1]
    return f"{moment - last.killed_at:.1f}s after kill -9 {last.fault.name}"
