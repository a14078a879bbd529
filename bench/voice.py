"""Voice search benchmark: a spoken query (a ~3 s clip) → its answer, through the HTTP API.

    python -m bench.voice [--queries 30] [--clip-seconds 3] [--no-record]

One run, in this order:

1. waits for a quiet machine (1-minute load average below ``--max-load``), then speaks
   the query phrases with espeak-ng (``tests/speech_clips.py``, as the voice tests do),
   each padded with silence to ``--clip-seconds``, as WAV and as WebM/Opus (what
   browsers' MediaRecorder sends);
2. starts the embedded stack on a fresh home, uploads scikit-image's sample photos
   through ``POST /v1/uploads`` and waits until ``GET /v1/media/{id}`` says searchable;
3. a few warm-up queries, then ``--queries`` sequential ``POST /v1/search/voice`` per
   format (the formats alternating): the wall time of each until its 200, whether the
   first hit is the photo the phrase names, and a split of the time from the
   ``voice_queries`` row's timestamps and the transcribe-queries worker's /metrics;
   after each, ``GET /v1/search?q=<its transcript>`` timed alone (the search part);
   then typed ``GET /v1/search?q=<phrase>`` for comparison; CPU of every part;
4. stops the stack; whisper in this process on the same clips: as the worker runs it
   for a voice query (Silero VAD, ``voice.language`` or detection, temperature
   fallback), then language detected vs given, VAD off, no fallback, and language
   detection and VAD on their own.

Prints Markdown tables and appends them, dated, to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import collections
import importlib
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import psutil
import psycopg
import skimage.data

from bench.common.processes import CpuSnapshot, machine_busy_fraction
from bench.common.quiet import wait_for_idle_cpus, wait_for_low_load
from bench.common.report import (
    REPO,
    RESULTS,
    machine_info,
    of_one_core,
    percentile,
    publish,
    say,
    table,
)
from bench.common.stack import (
    BATCHES,
    IN_BATCHES,
    StartStop,
    part_pids,
    private_settings,
    running_stack,
    worker_metrics,
)
from glimpse.config import RateLimit, Settings
from glimpse.models.speech import decode_speech, load_transcriber
from glimpse.stack.supervisor import EmbeddedStack

GOAL_P50_S = 1.5
SAMPLES = Path(skimage.data.__file__).parent
# What is said, and the sample photo it should find first.
PHRASES: tuple[tuple[str, str], ...] = (
    ("a cup of coffee", "coffee.png"),
    ("a cat on a chair", "chelsea.png"),
    ("a rocket on the launch pad", "rocket.jpg"),
    ("a horse in a field", "horse.png"),
    ("a motorbike", "motorcycle_left.png"),
    ("an astronaut in a space suit", "astronaut.png"),
)
FORMATS = {"webm": "audio/webm", "wav": "audio/wav"}  # webm/opus: Chrome's MediaRecorder


def speech_clips() -> ModuleType:
    """``tests/speech_clips.py`` (espeak-ng → WAV, PyAV re-encoding), shared with the
    voice tests rather than copied."""
    tests = str(REPO / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    return importlib.import_module("speech_clips")


# --- 1. clips ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Clip:
    phrase: str
    photo: str  # the sample photo's file name
    speech_s: float  # what espeak-ng said, its own trailing silence included
    seconds: float  # the padded clip
    data: dict[str, bytes]  # by format


def make_clips(directory: Path, seconds: float) -> list[Clip]:
    """Each phrase spoken, centred in ``seconds`` of audio (silence before and after,
    as a press-to-talk recording has), as WAV and re-encoded as each format."""
    sc = speech_clips()
    clips = []
    for i, (phrase, photo) in enumerate(PHRASES):
        spoken = sc.speak(phrase, directory / f"spoken-{i}.wav")
        speech_s = sc.wav_seconds(spoken)
        # concatenate() puts the gap after each piece: an empty piece first centres it
        nothing = sc.silence(directory / f"empty-{i}.wav", 0.0, rate=22_050)
        gap = max(0.0, (seconds - speech_s) / 2)
        wav = sc.concatenate([nothing, spoken], directory / f"clip-{i}.wav", gap_s=gap)
        data = {fmt: (wav if fmt == "wav" else sc.encode(wav, fmt)).read_bytes() for fmt in FORMATS}
        clips.append(Clip(phrase, photo, speech_s, sc.wav_seconds(wav), data))
    return clips


# --- 2. photos -----------------------------------------------------------------------


def upload_photos(api: httpx.Client, key: str, timeout_s: float) -> tuple[dict[str, str], float]:
    """The sample photos through ``POST /v1/uploads``; their keys by file name once all
    are searchable, and how long that took."""
    files = [
        ("files", (name, (SAMPLES / name).read_bytes(), _image_mime(name)))
        for name in sorted({photo for _, photo in PHRASES})
    ]
    started = time.perf_counter()
    response = api.post(
        "/v1/uploads",
        files=files,
        data={"prefix": "samples/"},
        headers={"Authorization": f"Bearer {key}"},
    )
    response.raise_for_status()
    items = response.json()["items"]
    pending = {item["status_url"]: item for item in items}
    deadline = time.monotonic() + timeout_s
    while pending:
        for url in list(pending):
            response = api.get(url)
            if response.status_code == 404:
                continue  # ingest has not written its row yet
            response.raise_for_status()
            media = response.json()
            if media["searchable"]:
                del pending[url]
            elif media["status"] != "accepted":
                raise RuntimeError(f"{media['key']}: {media['status']} {media.get('reason')}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"not searchable after {timeout_s:.0f} s: {sorted(pending)}")
        time.sleep(0.2)
    return {item["filename"]: item["key"] for item in items}, time.perf_counter() - started


def _image_mime(name: str) -> str:
    return "image/jpeg" if name.endswith(".jpg") else "image/png"


# --- 3. voice queries through the API ------------------------------------------------


@dataclass
class VoiceQuery:
    fmt: str
    clip: Clip
    expected_key: str
    sent_at: float  # epoch seconds, just before the POST
    wall_s: float  # POST sent → its 200 read
    transcript: str
    language: str
    first_key: str | None
    created_at: float  # the row's, epoch: inserted (validated, clip stored)
    finished_at: float  # the row's, epoch: transcript written (the NOTIFY commits with it)
    worker_s: float | None  # the transcribe-queries worker's batch for it (/metrics)
    search_s: float  # GET /v1/search?q=<transcript>, timed after the POST
    search_first_key: str | None

    @property
    def right(self) -> bool:
        return self.first_key == self.expected_key

    @property
    def heard(self) -> bool:
        return _words(self.transcript) == _words(self.clip.phrase)

    @property
    def to_row_s(self) -> float:
        return self.created_at - self.sent_at

    @property
    def transcription_s(self) -> float:
        return self.finished_at - self.created_at

    @property
    def after_s(self) -> float:
        return self.sent_at + self.wall_s - self.finished_at


def _words(text: str) -> list[str]:
    return [w.strip(".,!?;:").lower() for w in text.split()]


class VoiceClient:
    """Asks the API, then reads what the stack recorded about each query."""

    def __init__(self, api: httpx.Client, s: Settings, photo_keys: dict[str, str]) -> None:
        assert s.database.url
        self.api, self.photo_keys = api, photo_keys
        self.db = psycopg.connect(s.database.url, autocommit=True)
        self.worker_port = s.stack.transcribe_queries_health_port

    def close(self) -> None:
        self.db.close()

    def ask(self, clip: Clip, fmt: str) -> VoiceQuery:
        before = worker_metrics(self.worker_port)
        sent_at, started = time.time(), time.perf_counter()
        response = self.api.post(
            "/v1/search/voice", content=clip.data[fmt], headers={"Content-Type": FORMATS[fmt]}
        )
        wall_s = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"{clip.phrase!r} ({fmt}): {response.status_code} {response.text}")
        answer = response.json()
        row = self.db.execute(
            "SELECT extract(epoch FROM created_at), extract(epoch FROM finished_at) "
            "FROM voice_queries WHERE id = %s",
            (uuid.UUID(answer["query_id"]),),
        ).fetchone()
        assert row is not None
        started = time.perf_counter()
        typed = self.search(answer["transcript"])
        search_s = time.perf_counter() - started
        return VoiceQuery(
            fmt=fmt,
            clip=clip,
            expected_key=self.photo_keys[clip.photo],
            sent_at=sent_at,
            wall_s=wall_s,
            transcript=answer["transcript"],
            language=answer["language"],
            first_key=_first_key(answer),
            created_at=float(row[0]),
            finished_at=float(row[1]),
            worker_s=self._worker_batch_s(before),
            search_s=search_s,
            search_first_key=_first_key(typed),
        )

    def search(self, q: str) -> dict[str, Any]:
        response = self.api.get("/v1/search", params={"q": q})
        response.raise_for_status()
        found: dict[str, Any] = response.json()
        return found

    def _worker_batch_s(self, before: dict[str, float], timeout_s: float = 3.0) -> float | None:
        """The worker's one batch since ``before``: counted after its offsets are
        committed, a moment after the NOTIFY that answered the request."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            now = worker_metrics(self.worker_port)
            if now.get(BATCHES, 0.0) - before.get(BATCHES, 0.0) == 1:
                return now.get(IN_BATCHES, 0.0) - before.get(IN_BATCHES, 0.0)
            time.sleep(0.02)
        return None


def _first_key(answer: dict[str, Any]) -> str | None:
    hits = answer.get("hits") or []
    return hits[0]["key"] if hits else None


@dataclass
class Typed:
    phrase: str
    wall_s: float
    right: bool


@dataclass
class VoiceRun:
    warmup: list[VoiceQuery]
    queries: list[VoiceQuery]
    typed: list[Typed]
    window_s: float  # the timed voice queries, first sent → last answered
    cpu_s: dict[str, float]
    busy: float  # the machine over that window, of all cores
    quiet: str


def run_queries(
    stack: EmbeddedStack,
    client: VoiceClient,
    clips: Sequence[Clip],
    count: int,
    warmups: int,
    quiet: str,
) -> VoiceRun:
    formats = list(FORMATS)
    warmup = [client.ask(clips[i % len(clips)], formats[i % len(formats)]) for i in range(warmups)]
    say("  warm-up: " + ", ".join(f"{q.wall_s:.2f} s {q.transcript!r}" for q in warmup))
    pids = part_pids(stack)
    before = CpuSnapshot.take(pids)
    started = time.perf_counter()
    queries = []
    for i in range(count):
        for fmt in formats:  # alternating, so that drift hits both alike
            query = client.ask(clips[i % len(clips)], fmt)
            queries.append(query)
            say(
                f"  {len(queries):3d} {fmt:4s} {query.wall_s:.2f} s "
                f"(transcription {query.transcription_s:.2f}) {query.language} "
                f"{query.transcript!r} "
                f"{'right' if query.right else 'WRONG: ' + str(query.first_key)}"
            )
    window_s = time.perf_counter() - started
    after = CpuSnapshot.take(pids)
    typed = []
    for i in range(count):
        clip = clips[i % len(clips)]
        t0 = time.perf_counter()
        answer = client.search(clip.phrase)
        typed.append(
            Typed(
                clip.phrase,
                time.perf_counter() - t0,
                _first_key(answer) == client.photo_keys[clip.photo],
            )
        )
    return VoiceRun(
        warmup=warmup,
        queries=queries,
        typed=typed,
        window_s=window_s,
        cpu_s={k: after.cpu_s[k] - before.cpu_s[k] for k in after.cpu_s},
        busy=machine_busy_fraction(before.system, after.system),
        quiet=quiet,
    )


# --- 4. whisper in this process ------------------------------------------------------


@dataclass
class Variant:
    name: str
    seconds: list[float]
    transcripts: list[str]
    fell_back: list[bool]  # whisper retried at a temperature above 0 (model calls only)
    workers: bool = False  # the model call the worker makes for a voice query


Run = Callable[[int], tuple[str, bool | None]]


def bench_bare_whisper(clips: Sequence[Clip], s: Settings, rounds: int) -> list[Variant]:
    """Whisper as the worker runs it for a voice query, on every clip in every format,
    then on their decoded samples with the options the worker does not expose (through
    ``Transcriber.whisper``), interleaved so that drift hits all alike."""
    models = s.models
    transcriber = load_transcriber(models, home=s.home)
    transcriber.load()
    model = transcriber.whisper
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    data = [clip.data[fmt] for clip in clips for fmt in FORMATS]
    samples = [decode_speech(d, max_seconds=30) for d in data]
    worker_language = s.voice.language or models.whisper_language
    given = worker_language or "en"
    transcriber.transcribe(data[0], max_seconds=30)  # warm-up

    def whisper(language: str | None, vad: bool, fallback: bool) -> Run:
        # faster-whisper's default: greedy at 0, then sampling at 0.2 … 1.0 while the
        # result looks wrong (compression ratio, mean log-probability)
        temperature = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0] if fallback else 0.0

        def run(i: int) -> tuple[str, bool | None]:
            pieces, _ = model.transcribe(
                samples[i],
                language=language,
                beam_size=models.whisper_beam_size,
                vad_filter=vad,
                temperature=temperature,
            )
            done = list(pieces)
            return " ".join(p.text.strip() for p in done), any(p.temperature > 0 for p in done)

        return run

    def alone(result: Callable[[int], object]) -> Run:
        return lambda i: (str(result(i)), None)

    variants: list[tuple[str, Run]] = [
        (
            f"as the worker runs it: decode + VAD + {_language(worker_language)} + transcribe",
            lambda i: (
                transcriber.transcribe(data[i], max_seconds=30, language=s.voice.language).text,
                None,
            ),
        ),
        (
            "decode only (PyAV → 16 kHz mono)",
            alone(lambda i: decode_speech(data[i], max_seconds=30).size),
        ),
    ]
    calls = [(None, True, True), (given, True, True), (None, False, True), (given, False, True)]
    calls += [(None, True, False), (given, True, False)]
    for language, vad, fallback in calls:
        name = f"samples: {'VAD' if vad else 'no VAD'}, {_language(language)}"
        if not fallback:
            name += ", no temperature fallback"
        if (language, vad, fallback) == (worker_language, True, True):
            name += " (the worker's call)"
        variants.append((name, whisper(language, vad, fallback)))
    variants += [
        (
            "language detection alone (`detect_language`)",
            alone(lambda i: model.detect_language(samples[i])[0]),
        ),
        (
            "Silero VAD alone (`get_speech_timestamps`)",
            alone(lambda i: get_speech_timestamps(samples[i], VadOptions())),
        ),
    ]
    results = [
        Variant(name, [], [], [], name.endswith("(the worker's call)")) for name, _ in variants
    ]
    for _ in range(rounds):
        for i in range(len(data)):
            for (_, run), result in zip(variants, results, strict=True):
                started = time.perf_counter()
                text, fell_back = run(i)
                result.seconds.append(time.perf_counter() - started)
                result.transcripts.append(text)
                if fell_back is not None:
                    result.fell_back.append(fell_back)
    for result in results:
        say(f"  {result.name}: p50 {1000 * percentile(result.seconds, 50):.0f} ms")
    return results


def _language(language: str | None) -> str:
    return f"language `{language}` given" if language else "language detected"


# --- report --------------------------------------------------------------------------


def _p(values: Sequence[float], q: float) -> str:
    return f"{percentile(values, q):.2f}"


def _latency_row(label: str, seconds: list[float], right: list[bool], heard: str = "") -> list[str]:
    return [
        label,
        str(len(seconds)),
        *(_p(seconds, q) for q in (50, 90, 99)),
        f"{max(seconds):.2f}",
        f"{sum(right)}/{len(right)}",
        heard,
    ]


@dataclass
class Report:
    args: argparse.Namespace
    machine: dict[str, str]
    quiet: list[str]
    clips: list[Clip]
    settings: Settings  # the stack's
    start: StartStop
    upload_s: float
    run: VoiceRun
    bare: list[Variant]

    def markdown(self) -> str:
        parts = (self._header, self._latency, self._split, self._phrases, self._cpu, self._bare)
        return "\n\n".join(part() for part in parts) + "\n"

    def _header(self) -> str:
        machine = "\n".join(f"- {k}: {v}" for k, v in self.machine.items())
        quiet = "\n".join(f"- {line}" for line in self.quiet)
        models, voice = self.settings.models, self.settings.voice
        sizes = ", ".join(
            f"{fmt} {sum(len(c.data[fmt]) for c in self.clips) / len(self.clips) / 1000:.0f} kB"
            for fmt in FORMATS
        )
        seconds = [c.seconds for c in self.clips]
        speech = [c.speech_s for c in self.clips]
        return (
            f"## Voice search, {datetime.now(UTC):%Y-%m-%d %H:%M UTC}\n\n{machine}\n\n"
            f"Quiet checks:\n\n{quiet}\n\n"
            f"Clips: {len(self.clips)} phrases spoken by espeak-ng (150 words/min), centred "
            f"in {min(seconds):.2f} to {max(seconds):.2f} s of audio (speech "
            f"{min(speech):.2f} to {max(speech):.2f} s "
            f"as espeak-ng writes it); mean size {sizes} (webm: Opus 32 kbit/s, 48 kHz, as "
            f"MediaRecorder). Whisper: `{models.whisper_model or 'base'}` int8 (CTranslate2), "
            f"beam {models.whisper_beam_size}, voice queries in "
            f"{_language(voice.language or models.whisper_language)}, VAD on, "
            f"{len(os.sched_getaffinity(0))} threads. Stack start {self.start.start_s:.1f} s; "
            f"{len({c.photo for c in self.clips})} sample photos uploaded through "
            f"`POST /v1/uploads` and searchable in {self.upload_s:.1f} s. "
            + (
                f"Stack environment: `{' '.join(self.args.stack_env)}`."
                if self.args.stack_env
                else "Stack environment: as `glimpse up` (nothing added)."
            )
            + " The API's per-client voice limit is off (one client asks back to back)."
        )

    def _latency(self) -> str:
        queries, typed = self.run.queries, self.run.typed
        rows = [
            _latency_row(
                f"`POST /v1/search/voice`, {name}",
                [q.wall_s for q in group],
                [q.right for q in group],
                f"{sum(q.heard for q in group)}/{len(group)}",
            )
            for name, group in [
                *((fmt, [q for q in queries if q.fmt == fmt]) for fmt in FORMATS),
                ("all", queries),
            ]
        ]
        rows.append(
            _latency_row(
                "`GET /v1/search?q=<transcript>` (after each voice query)",
                [q.search_s for q in queries],
                [q.search_first_key == q.expected_key for q in queries],
            )
        )
        rows.append(
            _latency_row(
                "`GET /v1/search?q=<phrase>` (typed, one after another)",
                [t.wall_s for t in typed],
                [t.right for t in typed],
            )
        )
        p50 = percentile([q.wall_s for q in queries], 50)
        warm = ", ".join(f"{q.wall_s:.2f}" for q in self.run.warmup)
        return (
            "Sequential requests from one keep-alive client, wall time until the answer was "
            f"read; formats alternating; warm-up ({warm} s) not counted. Right = the first hit "
            "is the photo the phrase names; heard = the transcript has the phrase's words:\n\n"
            + table(
                ["request", "n", "p50 s", "p90 s", "p99 s", "max s", "right first", "heard"],
                rows,
            )
            + f"\n\n**voice p50 {p50:.2f} s** (goal ≤ {GOAL_P50_S} s on CPU: "
            f"{'meets' if p50 <= GOAL_P50_S else 'misses'})."
        )

    def _split(self) -> str:
        queries = self.run.queries
        worker = [q.worker_s for q in queries if q.worker_s is not None]
        kafka = [q.transcription_s - q.worker_s for q in queries if q.worker_s is not None]
        spans: list[tuple[str, list[float]]] = [
            (
                "request sent → row inserted (upload, validate the clip, store it in S3)",
                [q.to_row_s for q in queries],
            ),
            (
                "**row inserted → transcript written** (`finished_at - created_at`)",
                [q.transcription_s for q in queries],
            ),
            (
                "… of it in the transcribe-queries worker's batch (read row, S3 GET, decode, "
                "whisper, write; its /metrics, the offset commit after the NOTIFY included)",
                worker,
            ),
            ("… the rest: Kafka, produce → the worker's poll returns it", kafka),
            (
                "transcript written → answer read (commit + NOTIFY, the API wakes, search, JSON)",
                [q.after_s for q in queries],
            ),
            ("for scale: `GET /v1/search?q=<transcript>` alone", [q.search_s for q in queries]),
            ("**total**", [q.wall_s for q in queries]),
        ]
        total = percentile([q.wall_s for q in queries], 50)
        rows = [
            [
                label,
                *(_p(values, q) for q in (50, 90, 99)),
                f"{100 * percentile(values, 50) / total:.0f} %",
            ]
            for label, values in spans
        ]
        return (
            "Where the time goes, per voice query (seconds; the row's `created_at` and "
            "`finished_at` are the start of the transactions that wrote them, on the same "
            "clock as this process):\n\n"
            + table(["span", "p50", "p90", "p99", "p50 / total p50"], rows)
        )

    def _phrases(self) -> str:
        rows = []
        for clip in self.clips:
            mine = [q for q in self.run.queries if q.clip is clip]
            heard = collections.Counter(" ".join(_words(q.transcript)) for q in mine)
            languages = collections.Counter(q.language for q in mine)
            typed = [t for t in self.run.typed if t.phrase == clip.phrase]
            rows.append(
                [
                    f"“{clip.phrase}”",
                    clip.photo,
                    f"{clip.speech_s:.2f} / {clip.seconds:.2f}",
                    f"{len(clip.data['webm']) / 1000:.0f} / {len(clip.data['wav']) / 1000:.0f}",
                    "; ".join(f"“{text}” x{n}" for text, n in heard.most_common()),
                    ", ".join(f"{lang} x{n}" for lang, n in languages.most_common()),
                    f"{sum(q.right for q in mine)}/{len(mine)}",
                    f"{sum(t.right for t in typed)}/{len(typed)}",
                    _p([q.wall_s for q in mine], 50),
                ]
            )
        return "Per phrase:\n\n" + table(
            [
                "said",
                "should find",
                "speech / clip s",
                "webm / wav kB",
                "transcripts (lower case, no punctuation)",
                "language",
                "voice right",
                "typed right",
                "voice p50 s",
            ],
            rows,
        )

    def _cpu(self) -> str:
        run = self.run
        n = len(run.queries)
        cores = psutil.cpu_count() or 1
        names = sorted(run.cpu_s, key=lambda k: -run.cpu_s[k])
        rows = [
            [
                name.replace("bench (uploader, poller)", "bench (client, metrics, rows)"),
                f"{run.cpu_s[name]:.1f}",
                of_one_core(run.cpu_s[name], run.window_s),
                f"{1000 * run.cpu_s[name] / n:.0f}",
            ]
            for name in names
            if run.cpu_s[name] >= 0.05
        ]
        total = sum(run.cpu_s.values())
        others = max(0.0, run.busy * cores * run.window_s - total)
        rows.append(["**total**", f"{total:.1f}", of_one_core(total, run.window_s), ""])
        rows.append(["other processes", f"{others:.1f}", of_one_core(others, run.window_s), ""])
        return (
            f"CPU per part over the {n} timed voice queries ({run.window_s:.1f} s; {cores} "
            f"cores; machine {100 * run.busy:.0f} % busy; {run.quiet}):\n\n"
            + table(["process (with children)", "CPU s", "of one core", "CPU ms/query"], rows)
        )

    def _bare(self) -> str:
        [reference] = [v.transcripts for v in self.bare if v.workers]
        rows = []
        for variant in self.bare:
            compares = variant.name.startswith("samples")
            same = sum(
                _words(a) == _words(b) for a, b in zip(variant.transcripts, reference, strict=True)
            )
            fell_back = variant.fell_back
            rows.append(
                [
                    variant.name,
                    str(len(variant.seconds)),
                    f"{1000 * percentile(variant.seconds, 50):.0f}",
                    f"{1000 * percentile(variant.seconds, 90):.0f}",
                    f"{1000 * max(variant.seconds):.0f}",
                    f"{sum(fell_back)}/{len(fell_back)}" if fell_back else "",
                    f"{same}/{len(reference)}" if compares else "",
                ]
            )
        return (
            "Whisper in this process after the stack stopped (same model and threads as the "
            f"worker; the {len(self.clips)} clips in each of {len(FORMATS)} formats, "
            f"x {self.args.bare_rounds}; the `samples:` rows start from decoded 16 kHz "
            "samples; fell back = a segment needed a retry at a temperature above 0 (random "
            "sampling, a decoder pass per retry); same words = as the worker's call, "
            "punctuation and case aside):\n\n"
            + table(
                ["what", "calls", "p50 ms", "p90 ms", "max ms", "fell back", "same words"], rows
            )
        )


# --- main ----------------------------------------------------------------------------


# flag, type, default, help
OPTIONS: tuple[tuple[str, type, object, str], ...] = (
    ("--queries", int, 30, "timed voice queries per format"),
    ("--warmup", int, 2, "untimed voice queries first"),
    ("--clip-seconds", float, 3.0, "each clip's length, silence around the speech"),
    ("--bare-rounds", int, 2, "rounds over the clips of each in-process whisper variant"),
    ("--max-load", float, 1.5, "quiet: 1-minute load average below this"),
    ("--quiet-timeout", float, 600, "longest wait for a quiet machine, seconds"),
    ("--timeout", float, 300, "longest wait for the photos to be searchable, seconds"),
    ("--results", Path, RESULTS, "Markdown file to append to"),
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.voice", description=(__doc__ or "").split("\n")[0]
    )
    for flag, kind, default, text in OPTIONS:
        parser.add_argument(flag, type=kind, default=default, help=f"{text} ({default})")
    parser.add_argument(
        "--stack-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment for the stack's processes only, e.g. "
        "GLIMPSE_MODELS__WHISPER_LANGUAGE=en; repeatable",
    )
    parser.add_argument("--no-record", action="store_true", help="print only, append nothing")
    parser.add_argument("--keep-home", action="store_true", help="keep the temporary home")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    quiet = [wait_for_low_load(args.max_load, args.quiet_timeout)]
    machine = machine_info()
    home = Path(tempfile.mkdtemp(prefix="glimpse-bench-voice-"))
    try:
        say(f"speaking {len(PHRASES)} phrases …")
        clips = make_clips(home / "bench-clips", args.clip_seconds)
        # The stack's processes inherit this environment; the bare whisper does not read it.
        os.environ.update(dict(pair.split("=", 1) for pair in args.stack_env))
        settings = private_settings(home)
        # one client asks back to back: the API's per-client limit (0.5 a second) is off
        settings.api.voice_rate = RateLimit(per_second=0, burst=1)
        start = StartStop()
        say(f"starting the stack on {home} …")
        with running_stack(settings, start) as (stack, s):
            say(f"  ready in {start.start_s:.1f} s; uploading the sample photos …")
            key = stack.layout.api_key.read_text().strip()
            with httpx.Client(base_url=f"http://{s.api.host}:{s.api.port}", timeout=60) as api:
                photo_keys, upload_s = upload_photos(api, key, args.timeout)
                say(f"  searchable after {upload_s:.1f} s")
                client = VoiceClient(api, s, photo_keys)
                try:
                    note = wait_for_idle_cpus("voice queries")
                    quiet.append(note)
                    say(f"{args.queries} x {len(FORMATS)} voice queries …")
                    run = run_queries(stack, client, clips, args.queries, args.warmup, note)
                finally:
                    client.close()
        quiet.append(wait_for_idle_cpus("bare whisper"))
        say("whisper in this process …")
        bare = bench_bare_whisper(clips, s, args.bare_rounds)
    finally:
        if not args.keep_home:
            shutil.rmtree(home, ignore_errors=True)

    markdown = Report(args, machine, quiet, clips, s, start, upload_s, run, bare).markdown()
    publish(markdown, args)


if __name__ == "__main__":
    main()
