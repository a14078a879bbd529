"""Spoken test clips: espeak-ng speaks a sentence into a WAV, PyAV re-encodes it.

    wav = speak("the weather is sunny today", tmp_path / "clip.wav")
    ogg = encode(wav, "ogg")                  # opus in ogg; also webm, mp3, m4a, flac
    silence(tmp_path / "quiet.wav", seconds=3)

espeak-ng (Debian ``espeak-ng``) is a formant synthesiser: robotic, but words come out
clearly enough for whisper base. Pick plain, common words for assertions ("weather",
"coffee", "morning"); names and rare words get misheard ("brown fox" → "round fox").
Nothing here is cached between runs: a clip costs ~20 ms to speak, ~50 ms to encode.
"""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path
from typing import Final

import av
import numpy as np

# container format, codec, sample rate, bit rate (0: lossless): what browsers and
# phones make, at the low bit rates voice recorders use.
FORMATS: Final[dict[str, tuple[str, str, int, int]]] = {
    # WhatsApp/Telegram voice notes, Firefox's MediaRecorder
    "ogg": ("ogg", "libopus", 48_000, 32_000),
    "webm": ("webm", "libopus", 48_000, 32_000),  # Chrome's MediaRecorder
    "mp3": ("mp3", "libmp3lame", 44_100, 64_000),
    "m4a": ("ipod", "aac", 44_100, 64_000),  # iPhone voice memos; "ipod" is FFmpeg's m4a muxer
    "flac": ("flac", "flac", 22_050, 0),
}
# espeak-ng's default is 175 words per minute; 150 is a calm speaker.
DEFAULT_SPEED = 150


def espeak() -> str:
    found = shutil.which("espeak-ng")
    if found is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    return found


def speak(text: str, path: Path, voice: str = "en-us", speed: int = DEFAULT_SPEED) -> Path:
    """``text`` spoken into a 22.05 kHz mono 16-bit WAV at ``path``; returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [espeak(), "-v", voice, "-s", str(speed), "-w", str(path), text],
        check=True,
        capture_output=True,
    )
    return path


def silence(path: Path, seconds: float, *, noise: float = 0.0, rate: int = 16_000) -> Path:
    """A WAV of digital silence, or of faint white noise (``noise``: its amplitude)."""
    samples = np.zeros(int(seconds * rate), dtype=np.float32)
    if noise:
        samples = np.random.default_rng(0).normal(0.0, noise, samples.size).astype(np.float32)
    return write_wav(path, samples, rate)


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:  # type: ignore[type-arg]
    """Mono float samples in [-1, 1] as 16-bit PCM."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return path


def concatenate(paths: list[Path], path: Path, gap_s: float = 0.5) -> Path:
    """WAVs made by ``speak`` joined into one, ``gap_s`` of silence between them."""
    pieces = []
    rate = 0
    for source in paths:
        with wave.open(str(source), "rb") as clip:
            rate = clip.getframerate()
            pcm = np.frombuffer(clip.readframes(clip.getnframes()), dtype="<i2")
        pieces += [pcm.astype(np.float32) / 32767, np.zeros(int(gap_s * rate), np.float32)]
    return write_wav(path, np.concatenate(pieces), rate)


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as clip:
        return clip.getnframes() / clip.getframerate()


def encode(wav_path: Path, fmt: str) -> Path:
    """The WAV re-encoded as ``fmt`` (a key of ``FORMATS``), beside it with that suffix."""
    container, codec, rate, bit_rate = FORMATS[fmt]
    out_path = wav_path.with_suffix(f".{fmt}")
    with av.open(str(wav_path)) as source, av.open(str(out_path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate)
        assert isinstance(stream, av.AudioStream)
        stream.layout = "mono"
        if bit_rate:
            stream.bit_rate = bit_rate
        # Encoders take fixed-size frames in their own sample format and rate.
        resampler = av.AudioResampler(
            format=stream.codec_context.codec.audio_formats[0].name, layout="mono", rate=rate
        )
        for frame in source.decode(audio=0):
            for resampled in resampler.resample(frame):
                out.mux(stream.encode(resampled))
        for resampled in resampler.resample(None):
            out.mux(stream.encode(resampled))
        out.mux(stream.encode(None))
    return out_path
