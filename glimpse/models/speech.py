"""Speech to text with faster-whisper (CTranslate2), from the offline whisper base or any
CTranslate2 whisper model.

transcriber = load_transcriber(settings.models, home=settings.home)   # nothing read yet
transcriber.load()                                                    # at worker start
found = transcriber.transcribe(data, max_seconds=30)                  # bytes or a file path

The audio is decoded with PyAV (wav, ogg/opus, webm/opus from browsers' MediaRecorder,
mp3, m4a, flac…), down-mixed and resampled to 16 kHz mono as whisper wants, and
transcribed in windows of ``WINDOW_SECONDS`` (segment times offset to the whole file),
so memory is the same for a 4-hour note as for a 5-minute one (the whole file at once
cost ~1 MB per second of audio: ~15 GB for 4 h). What is wrong with the *file* raises
``TranscriptionError`` with a reason and a sentence for people; anything else is a bug
or the infrastructure, and raises as such.
"""

from __future__ import annotations

import io
import itertools
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import av
import numpy as np
import numpy.typing as npt

from glimpse.config import ModelSettings
from glimpse.media.reasons import RejectReason
from glimpse.models.base import InferenceModel, ModelNotLoadedError
from glimpse.models.device import DeviceSetting, select_device
from glimpse.models.revision import directory_revision
from glimpse.models.sources import display_name
from glimpse.models.whisper_assets import WHISPER_BASE_ID, resolve_cache_root, whisper_directory

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

log = logging.getLogger(__name__)

Samples = npt.NDArray[np.float32]
AudioSource = bytes | Path  # a file's bytes, or its path (long audio: not all in memory)

SAMPLE_RATE = 16_000  # whisper's feature extractor works on 16 kHz mono
# Long enough that few sentences are cut at a window's edge, short enough that a
# window's samples and features stay small (5 min: 19 MB of samples).
WINDOW_SECONDS = 300.0
# The int8 variant transcribes slightly differently; like text.py's, it keeps the model
# id and marks the revision.
_INT8_SUFFIX = "+int8"


@dataclass(frozen=True, slots=True)
class Segment:
    start: float  # seconds from the start of the file
    end: float
    text: str


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str  # the segments' texts joined with spaces
    language: str  # ISO 639-1, detected unless configured
    language_probability: float  # 1.0 when configured
    duration_s: float  # of the whole audio, silence included
    segments: list[Segment]


class TranscriptionError(ValueError):
    """The file cannot give a transcript. ``reason`` is a machine-readable word (the
    values ingest stores: ``undecodable``, ``too_long``, ``no_speech``), ``detail`` the
    same for people."""

    reason: str
    detail: str

    def __init__(self, reason: str, detail: str) -> None:
        # Both in args, so the exception pickles.
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


class Transcriber(InferenceModel):
    def __init__(
        self,
        source: str,
        *,
        language: str | None,
        beam_size: int,
        device: DeviceSetting,
        cache_root: Path,
        hub_cache: Path | None,
        cpu_threads: int | None = None,  # None: every core this process may use
    ) -> None:
        super().__init__(f"whisper/{display_name(source)}" if source else WHISPER_BASE_ID, device)
        self._source = source
        self._language = language
        self._beam_size = beam_size
        self._cache_root = cache_root
        self._hub_cache = hub_cache
        self._cpu_threads = cpu_threads
        self._model: WhisperModel | None = None

    def _load(self) -> str:
        from faster_whisper import WhisperModel

        directory = whisper_directory(
            self._source, cache_root=self._cache_root, hub_cache=self._hub_cache
        )
        device = self._device = select_device(self.requested_device)
        # int8 is CTranslate2's fastest CPU path; GPUs run float16 natively.
        compute_type = "float16" if device.type == "cuda" else "int8"
        self._model = WhisperModel(
            str(directory),
            device=device.type,
            compute_type=compute_type,
            cpu_threads=self._cpu_threads or _usable_cores(),
            num_workers=1,  # one clip at a time (the run lock); whisper uses every core
        )
        revision = directory_revision(directory)
        return revision + _INT8_SUFFIX if compute_type == "int8" else revision

    @property
    def whisper(self) -> WhisperModel:
        """The loaded faster-whisper model itself, for measuring options ``transcribe``
        does not offer (bench/voice.py); services call ``transcribe``."""
        if self._model is None:
            raise ModelNotLoadedError(self.model_id)
        return self._model

    def transcribe(
        self,
        audio: AudioSource,
        *,
        max_seconds: float,
        language: str | None = None,
        window_s: float = WINDOW_SECONDS,
        hotwords: str | None = None,
    ) -> Transcript:
        """The speech in ``audio`` (bytes, or a file's path); raises ``TranscriptionError``
        for a file without any, or longer than ``max_seconds`` (checked before the model
        runs). ``language`` overrides the configured one; with neither, it is detected on
        the first window (which costs a second encoder pass: ~0.7 s on 2 CPU cores) and
        kept for the rest. ``hotwords`` bias decoding toward those words."""
        windows = speech_windows(audio, max_seconds=max_seconds, window_s=window_s)
        # Decoding needs no model: the first window (all of a short clip) is decoded
        # outside the lock, overlapping another clip's run.
        first = next(windows)
        if len(first) >= window_s * SAMPLE_RATE:
            # More may follow: decode through once, without keeping samples, so "too
            # long" is known before the model runs.
            measure_speech(audio, max_seconds=max_seconds)
        language = language or self._language
        probability = 1.0
        segments: list[Segment] = []
        offset = 0.0
        with self._running():
            assert self._model is not None
            for i, samples in enumerate(itertools.chain([first], windows)):
                pieces, info = self._model.transcribe(
                    samples,
                    language=language,
                    beam_size=self._beam_size,
                    # Silero VAD cuts silences out first: faster on voice notes with
                    # pauses, and whisper invents text ("Thank you.") for silence otherwise.
                    vad_filter=True,
                    hotwords=hotwords,
                )
                # A generator: the decoding happens while it is consumed, so in the lock.
                segments += [
                    Segment(p.start + offset, p.end + offset, p.text.strip()) for p in pieces
                ]
                if i == 0 and language is None:
                    language, probability = info.language, float(info.language_probability)
                offset += len(samples) / SAMPLE_RATE
        text = " ".join(s.text for s in segments if s.text).strip()
        if not text:
            raise TranscriptionError(
                RejectReason.NO_SPEECH,
                f"no speech was heard in the {_duration(offset)} of audio",
            )
        assert language is not None
        return Transcript(
            text=text,
            language=language,
            language_probability=probability,
            duration_s=offset,
            segments=segments,
        )


def load_transcriber(models: ModelSettings, home: Path | None = None) -> Transcriber:
    """The transcriber ``models.whisper_model`` names, not loaded yet: call ``.load()``.

    ``home`` is ``Settings.home``: the offline model is assembled under its ``models/``
    unless ``models.cache_dir`` is set.
    """
    return Transcriber(
        models.whisper_model,
        language=models.whisper_language,
        beam_size=models.whisper_beam_size,
        device=models.device,
        cache_root=resolve_cache_root(models, home),
        hub_cache=models.cache_dir,
        # CTranslate2 has its own thread pool, but the same reason to share the cores
        cpu_threads=models.torch_threads or None,
    )


def decode_speech(audio: AudioSource, *, max_seconds: float) -> Samples:
    """16 kHz mono float32 samples of the first audio track of ``audio``, all at once
    (for short clips; long audio goes through ``speech_windows``).

    Decoding stops as soon as the audio passes ``max_seconds``, so a long file costs at
    most that much decoding (FFmpeg decodes far faster than real time), and headers,
    which can lie or be missing (browsers' WebM), are not trusted for the length.
    """
    return np.concatenate(list(speech_windows(audio, max_seconds=max_seconds, window_s=None)))


def measure_speech(audio: AudioSource, *, max_seconds: float) -> float:
    """Seconds of audio, decoded through without keeping samples; raises like
    ``decode_speech`` (too long, undecodable)."""
    samples = 0
    for pieces in _decoded_pieces(audio, max_seconds):
        samples += len(pieces)
    return samples / SAMPLE_RATE


def speech_windows(
    audio: AudioSource, *, max_seconds: float, window_s: float | None = WINDOW_SECONDS
) -> Iterator[Samples]:
    """``decode_speech``'s samples in consecutive windows of ``window_s`` seconds (the
    last one shorter; None: one window), decoded incrementally: memory holds one window."""
    size = None if window_s is None else max(1, round(window_s * SAMPLE_RATE))
    pending: list[Samples] = []
    held = 0
    for piece in _decoded_pieces(audio, max_seconds):
        rest = piece
        while size is not None and held + len(rest) >= size:
            cut = size - held
            pending.append(rest[:cut])
            yield np.concatenate(pending)
            pending, held, rest = [], 0, rest[cut:]
        if len(rest):
            pending.append(rest)
            held += len(rest)
    if pending:
        yield np.concatenate(pending)


def _decoded_pieces(audio: AudioSource, max_seconds: float) -> Iterator[Samples]:
    """Resampled frames of the first audio track, as they are decoded; at least one."""
    source: str | io.BytesIO = str(audio) if isinstance(audio, Path) else io.BytesIO(audio)
    try:
        container = av.open(source, mode="r", metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise TranscriptionError(
            RejectReason.UNDECODABLE,
            f"the file is not audio that can be decoded ({_ffmpeg(exc)})",
        ) from exc
    with container:
        if not container.streams.audio:
            held = ", ".join(sorted({s.type for s in container.streams})) or "no streams"
            raise TranscriptionError(
                RejectReason.UNDECODABLE,
                f"the file has no audio track (FFmpeg reads it as {container.format.name} "
                f"holding {held})",
            )
        empty = True
        for piece in _decode_first_track(container, max_seconds):
            empty = empty and not len(piece)
            yield piece
    if empty:
        raise TranscriptionError(
            RejectReason.UNDECODABLE, "no audio could be decoded from the file"
        )


def _decode_first_track(
    container: av.container.InputContainer, max_seconds: float
) -> Iterator[Samples]:
    stream = container.streams.audio[0]
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    limit = max_seconds * SAMPLE_RATE
    count = 0
    bad_packets = 0
    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.FFmpegError:
                # A damaged packet is skipped, as FFmpeg players do; ingest has already
                # turned away files with more than a few of them.
                bad_packets += 1
                continue
            for frame in frames:
                for resampled in resampler.resample(frame):
                    count += resampled.samples
                    yield _samples(resampled)
            if count > limit:
                raise TranscriptionError(
                    RejectReason.TOO_LONG,
                    f"the audio is longer than the limit of {_duration(max_seconds)} "
                    f"(stopped decoding at {_duration(count / SAMPLE_RATE)})",
                )
    except av.FFmpegError as exc:
        if not count:
            raise TranscriptionError(
                RejectReason.UNDECODABLE, f"the audio cannot be decoded ({_ffmpeg(exc)})"
            ) from exc
        # Cut short (a recording whose upload broke off): what came through is still speech.
        log.warning(
            "audio damaged after %.1f s, transcribing that much: %s", count / SAMPLE_RATE, exc
        )
    for frame in resampler.resample(None):
        yield _samples(frame)
    if bad_packets:
        log.warning("skipped %d undecodable audio packets", bad_packets)


def _samples(frame: av.AudioFrame) -> Samples:
    # packed float mono: one row of samples
    return frame.to_ndarray().astype(np.float32, copy=False).reshape(-1)


def _usable_cores() -> int:
    """Cores this process may run on (a container's cpuset, taskset), not the host's."""
    return len(os.sched_getaffinity(0)) or 1


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


def _ffmpeg(exc: av.FFmpegError) -> str:
    return f"FFmpeg: {exc.strerror or exc}"
