"""Speech to text with faster-whisper (CTranslate2), from the offline whisper base or any
CTranslate2 whisper model.

transcriber = load_transcriber(settings.models, home=settings.home)   # nothing read yet
transcriber.load()                                                    # at worker start
found = transcriber.transcribe(data, max_seconds=30)                  # bytes of any audio

The bytes are decoded in memory with PyAV (wav, ogg/opus, webm/opus from browsers'
MediaRecorder, mp3, m4a, flac…), down-mixed and resampled to 16 kHz mono as whisper
wants. What is wrong with the *file* raises ``TranscriptionError`` with a reason and a
sentence for people; anything else is a bug or the infrastructure, and raises as such.
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import av
import numpy as np
import numpy.typing as npt

from glimpse.config import ModelSettings
from glimpse.media.reasons import RejectReason
from glimpse.models.base import InferenceModel
from glimpse.models.device import DeviceSetting, select_device
from glimpse.models.revision import directory_revision
from glimpse.models.sources import display_name
from glimpse.models.whisper_assets import WHISPER_BASE_ID, resolve_cache_root, whisper_directory

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

log = logging.getLogger(__name__)

Samples = npt.NDArray[np.float32]

SAMPLE_RATE = 16_000  # whisper's feature extractor works on 16 kHz mono
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
        super().__init__(f"whisper/{display_name(source)}" if source else WHISPER_BASE_ID)
        self._source = source
        self._language = language
        self._beam_size = beam_size
        self._device_setting: DeviceSetting = device
        self._cache_root = cache_root
        self._hub_cache = hub_cache
        self._cpu_threads = cpu_threads
        self._model: WhisperModel | None = None

    def _load(self) -> str:
        from faster_whisper import WhisperModel

        directory = whisper_directory(
            self._source, cache_root=self._cache_root, hub_cache=self._hub_cache
        )
        device = select_device(self._device_setting)
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

    def transcribe(
        self, audio: bytes, *, max_seconds: float, language: str | None = None
    ) -> Transcript:
        """The speech in ``audio``; raises ``TranscriptionError`` for a file without any,
        or longer than ``max_seconds`` (checked before the model runs). ``language``
        overrides the configured one; with neither, it is detected (which costs a second
        encoder pass: ~0.7 s on 2 CPU cores, whatever the clip's length)."""
        # Decoding needs no model: done outside the lock, it overlaps another clip's run.
        samples = decode_speech(audio, max_seconds=max_seconds)
        with self._running():
            assert self._model is not None
            pieces, info = self._model.transcribe(
                samples,
                language=language or self._language,
                beam_size=self._beam_size,
                # Silero VAD cuts silences out first: faster on voice notes with pauses,
                # and whisper invents text ("Thank you.") for long silences otherwise.
                vad_filter=True,
            )
            # A generator: the decoding happens while it is consumed, so inside the lock.
            segments = [Segment(p.start, p.end, p.text.strip()) for p in pieces]
        text = " ".join(s.text for s in segments if s.text).strip()
        if not text:
            raise TranscriptionError(
                RejectReason.NO_SPEECH,
                f"no speech was heard in the {_duration(info.duration)} of audio",
            )
        return Transcript(
            text=text,
            language=info.language,
            language_probability=float(info.language_probability),
            duration_s=float(info.duration),
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


def decode_speech(audio: bytes, *, max_seconds: float) -> Samples:
    """16 kHz mono float32 samples of the first audio track of ``audio``.

    Decoding stops as soon as the audio passes ``max_seconds``, so a long file costs at
    most that much decoding (FFmpeg decodes far faster than real time), and headers,
    which can lie or be missing (browsers' WebM), are not trusted for the length.
    """
    try:
        container = av.open(io.BytesIO(audio), mode="r", metadata_errors="ignore")
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
        chunks = _decode_first_track(container, max_seconds)
    if not chunks:
        raise TranscriptionError(
            RejectReason.UNDECODABLE, "no audio could be decoded from the file"
        )
    return np.concatenate(chunks)


def _decode_first_track(
    container: av.container.InputContainer, max_seconds: float
) -> list[Samples]:
    stream = container.streams.audio[0]
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    limit = max_seconds * SAMPLE_RATE
    chunks: list[Samples] = []
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
                    chunks.append(_samples(resampled))
                    count += resampled.samples
            if count > limit:
                raise TranscriptionError(
                    RejectReason.TOO_LONG,
                    f"the audio is longer than the limit of {_duration(max_seconds)} "
                    f"(stopped decoding at {_duration(count / SAMPLE_RATE)})",
                )
    except av.FFmpegError as exc:
        if not chunks:
            raise TranscriptionError(
                RejectReason.UNDECODABLE, f"the audio cannot be decoded ({_ffmpeg(exc)})"
            ) from exc
        # Cut short (a recording whose upload broke off): what came through is still speech.
        log.warning(
            "audio damaged after %.1f s, transcribing that much: %s", count / SAMPLE_RATE, exc
        )
    chunks.extend(_samples(frame) for frame in resampler.resample(None))
    if bad_packets:
        log.warning("skipped %d undecodable audio packets", bad_packets)
    return chunks


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
