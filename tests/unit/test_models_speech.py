"""Speech to text: the real whisper base from its wheels, assembled into a fresh cache,
on clips spoken by espeak-ng; and the assembly itself."""

from __future__ import annotations

import hashlib
import io
import os
import re
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from speech_clips import FORMATS, concatenate, encode, silence, speak, wav_seconds

from glimpse.config import ModelSettings
from glimpse.models import ModelNotLoadedError
from glimpse.models.speech import (
    SAMPLE_RATE,
    Transcriber,
    TranscriptionError,
    decode_speech,
    load_transcriber,
    speech_windows,
)
from glimpse.models.whisper_assets import (
    MODEL_FILE,
    MODEL_SHA256,
    MODEL_SIZE,
    STAMP_FILE,
    WHISPER_BASE_ID,
    WHISPER_BASE_NAME,
    WhisperAssetError,
    ensure_whisper_base,
    is_assembled,
    resolve_cache_root,
    verify_whisper_base,
)

SENTENCE = "Good morning. The weather is sunny today, and I would like a cup of coffee."
# Words espeak says clearly enough for whisper base; "weather" comes out as "where there".
HEARD = {"morning", "sunny", "today", "coffee"}


def words(text: str) -> set[str]:
    return set(re.sub(r"[^\w\s']", " ", text.lower()).split())


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def transcriber(cache: Path) -> Transcriber:
    model = load_transcriber(ModelSettings(cache_dir=cache, device="cpu"))
    model.load()
    return model


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("clips")
    speak(SENTENCE, folder / "sentence.wav")
    return folder


def unloaded(cache: Path) -> Transcriber:
    return load_transcriber(ModelSettings(cache_dir=cache, device="cpu"))


# --- transcripts -------------------------------------------------------------------


def test_identity(transcriber: Transcriber) -> None:
    assert transcriber.model_id == WHISPER_BASE_ID == "whisper/base"
    # CPU runs int8: the revision says so, as the int8 text embedder's does
    assert re.fullmatch(r"[0-9a-f]{12}\+int8", transcriber.revision)


@pytest.mark.parametrize("fmt", ["wav", "ogg", "webm"])
def test_a_spoken_sentence(transcriber: Transcriber, clips: Path, fmt: str) -> None:
    wav = clips / "sentence.wav"
    clip = wav if fmt == "wav" else encode(wav, fmt)
    found = transcriber.transcribe(clip.read_bytes(), max_seconds=30)
    assert words(found.text) >= HEARD, found.text
    assert found.language == "en"
    assert found.language_probability > 0.5
    assert found.duration_s == pytest.approx(wav_seconds(wav), abs=0.05)
    assert found.text == " ".join(segment.text for segment in found.segments)
    assert all(0 <= s.start < s.end <= found.duration_s + 0.5 for s in found.segments)


def test_a_configured_language_is_not_detected(cache: Path, clips: Path) -> None:
    english = load_transcriber(ModelSettings(cache_dir=cache, device="cpu", whisper_language="en"))
    english.load()
    clip = speak("coffee please", clips / "short.wav")  # 1.4 s: short clips survive VAD
    found = english.transcribe(clip.read_bytes(), max_seconds=30)
    assert "coffee" in words(found.text)
    assert (found.language, found.language_probability) == ("en", 1.0)


def test_silence_is_no_speech(transcriber: Transcriber, tmp_path: Path) -> None:
    for quiet in (silence(tmp_path / "zero.wav", 3), silence(tmp_path / "hiss.wav", 3, noise=0.01)):
        with pytest.raises(TranscriptionError) as err:
            transcriber.transcribe(quiet.read_bytes(), max_seconds=30)
        assert err.value.reason == "no_speech"
        assert "3.0 s" in err.value.detail


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (os.urandom(4096), "not audio that can be decoded (FFmpeg: Invalid data"),
        (b"", "not audio that can be decoded"),
        (b"just some text\n" * 50, "not audio that can be decoded"),
        # FFmpeg opens a PNG fine, as a one-picture video: there is just no sound in it
        (png(), "no audio track (FFmpeg reads it as png_pipe holding video)"),
    ],
    ids=["random", "empty", "text", "png"],
)
def test_what_is_not_audio_is_undecodable(transcriber: Transcriber, data: bytes, says: str) -> None:
    with pytest.raises(TranscriptionError) as err:
        transcriber.transcribe(data, max_seconds=30)
    assert err.value.reason == "undecodable"
    assert says in err.value.detail
    assert str(err.value).startswith("undecodable: ")


def test_a_header_without_samples_is_undecodable(clips: Path) -> None:
    header_only = (clips / "sentence.wav").read_bytes()[:44]
    with pytest.raises(TranscriptionError, match="no audio could be decoded") as err:
        decode_speech(header_only, max_seconds=30)
    assert err.value.reason == "undecodable"


def test_too_long_is_refused_before_the_model_runs(cache: Path, clips: Path) -> None:
    wav = clips / "sentence.wav"
    long = concatenate([wav, wav, wav], clips / "long.wav")  # ~17 s
    # Never loaded: had the model been asked, this would be ModelNotLoadedError.
    with pytest.raises(TranscriptionError) as err:
        unloaded(cache).transcribe(long.read_bytes(), max_seconds=10)
    assert err.value.reason == "too_long"
    assert "limit of 10.0 s" in err.value.detail
    assert "stopped decoding at 10." in err.value.detail  # not all 17 s were decoded


def test_inference_before_load_raises(cache: Path, clips: Path) -> None:
    with pytest.raises(ModelNotLoadedError):
        unloaded(cache).transcribe((clips / "sentence.wav").read_bytes(), max_seconds=30)
    with pytest.raises(ModelNotLoadedError):
        unloaded(cache).whisper  # noqa: B018 - the property itself raises


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_recorder_format_decodes_to_16k_mono(clips: Path, fmt: str) -> None:
    wav = clips / "sentence.wav"
    samples = decode_speech(encode(wav, fmt).read_bytes(), max_seconds=30)
    assert samples.dtype.name == "float32"
    assert samples.ndim == 1
    # AAC adds ~20 ms of encoder priming
    assert len(samples) / SAMPLE_RATE == pytest.approx(wav_seconds(wav), abs=0.05)
    assert 0.05 < float(abs(samples).max()) <= 1.0


# --- long audio, window by window --------------------------------------------------


def test_long_audio_is_transcribed_in_windows_timed_from_the_start_of_the_file(
    transcriber: Transcriber, clips: Path
) -> None:
    wav = clips / "sentence.wav"
    three = concatenate([wav, wav, wav], clips / "three.wav", gap_s=1.0)  # ~20 s

    found = transcriber.transcribe(three, max_seconds=60, window_s=7.0)  # a file's path

    assert found.duration_s == pytest.approx(wav_seconds(three), abs=0.05)
    starts = [s.start for s in found.segments]
    assert starts == sorted(starts)
    assert found.segments[-1].start >= 14  # from the third window, offset by 2 x 7 s
    assert found.segments[-1].end <= found.duration_s + 0.5
    assert "coffee" in words(found.segments[-1].text + " " + found.segments[-2].text)
    assert found.language == "en"


def test_windows_hold_every_sample_once(clips: Path) -> None:
    wav = clips / "sentence.wav"
    whole = decode_speech(wav.read_bytes(), max_seconds=30)

    windows = list(speech_windows(wav, max_seconds=30, window_s=2.0))

    assert [len(w) for w in windows[:-1]] == [2 * SAMPLE_RATE] * (len(windows) - 1)
    assert 0 < len(windows[-1]) <= 2 * SAMPLE_RATE
    assert (np.concatenate(windows) == whole).all()


def _decode_peak_bytes(path: Path) -> int:
    tracemalloc.start()
    try:
        for _ in speech_windows(path, max_seconds=3600, window_s=10.0):
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_decoding_memory_does_not_grow_with_the_length_of_the_audio(tmp_path: Path) -> None:
    minute = silence(tmp_path / "1min.wav", 60, noise=0.1)
    ten_minutes = silence(tmp_path / "10min.wav", 600, noise=0.1)

    short_peak, long_peak = _decode_peak_bytes(minute), _decode_peak_bytes(ten_minutes)

    # one 10-s window of float32 is 640 kB; all of 10 minutes would be 38 MB
    assert long_peak < 1.5 * short_peak
    assert long_peak < 4 * 1024 * 1024


def test_too_long_is_refused_before_the_model_runs_past_the_first_window(
    cache: Path, clips: Path
) -> None:
    wav = clips / "sentence.wav"
    long = concatenate([wav, wav, wav], clips / "long.wav")  # ~17 s
    with pytest.raises(TranscriptionError) as err:
        unloaded(cache).transcribe(long.read_bytes(), max_seconds=10, window_s=4.0)
    assert err.value.reason == "too_long"


# --- the offline model's assembly ----------------------------------------------------


def sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def test_the_cache_dir_defaults_to_home_models(tmp_path: Path) -> None:
    assert resolve_cache_root(ModelSettings(), tmp_path) == tmp_path / "models"
    assert resolve_cache_root(ModelSettings(cache_dir=tmp_path / "c"), tmp_path) == tmp_path / "c"
    assert resolve_cache_root(ModelSettings()) == Path(".glimpse") / "models"


def test_assembled_once_and_reused(cache: Path, transcriber: Transcriber) -> None:
    directory = cache / WHISPER_BASE_NAME
    model = directory / MODEL_FILE
    assert sha256(model) == MODEL_SHA256
    assert model.stat().st_size == MODEL_SIZE
    assert (directory / STAMP_FILE).read_text().strip() == MODEL_SHA256
    # nothing but the model directory: the temporary one was renamed into place
    assert [p.name for p in cache.iterdir()] == [WHISPER_BASE_NAME]
    before = model.stat().st_mtime_ns
    assert ensure_whisper_base(cache) == directory
    assert model.stat().st_mtime_ns == before
    verify_whisper_base(directory)


def test_damage_is_found_by_verify_and_a_short_file_is_rebuilt(tmp_path: Path) -> None:
    directory = ensure_whisper_base(tmp_path)
    model = directory / MODEL_FILE
    with model.open("r+b") as handle:  # one flipped byte: same size, same stamp
        handle.seek(MODEL_SIZE // 2)
        byte = handle.read(1)
        handle.seek(MODEL_SIZE // 2)
        handle.write(bytes([byte[0] ^ 0xFF]))
    assert is_assembled(directory)  # the cheap check cannot see it…
    with pytest.raises(WhisperAssetError, match=r"model\.bin is damaged"):
        verify_whisper_base(directory)  # …the full one does
    os.truncate(model, MODEL_SIZE - 1)
    assert not is_assembled(directory)
    assert ensure_whisper_base(tmp_path) == directory
    verify_whisper_base(directory)


def test_a_half_written_directory_is_replaced(tmp_path: Path) -> None:
    broken = tmp_path / WHISPER_BASE_NAME
    broken.mkdir()
    (broken / MODEL_FILE).write_bytes(b"left over from a crash")
    ensure_whisper_base(tmp_path)
    verify_whisper_base(broken)
    assert [p.name for p in tmp_path.iterdir()] == [WHISPER_BASE_NAME]


def test_two_assemblers_at_once_both_end_with_the_model(tmp_path: Path) -> None:
    start = threading.Barrier(2)
    results: list[Path] = []

    def assemble() -> None:
        start.wait()
        results.append(ensure_whisper_base(tmp_path))

    threads = [threading.Thread(target=assemble) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [tmp_path / WHISPER_BASE_NAME] * 2
    verify_whisper_base(results[0])
    assert [p.name for p in tmp_path.iterdir()] == [WHISPER_BASE_NAME]


def test_leftovers_of_a_crashed_assembly_are_removed(tmp_path: Path) -> None:
    abandoned = tmp_path / f".{WHISPER_BASE_NAME}.crashed"
    in_progress = tmp_path / f".{WHISPER_BASE_NAME}.someone-else"
    for folder in (abandoned, in_progress):
        folder.mkdir()
        (folder / MODEL_FILE).write_bytes(b"partial")
    an_hour_ago = time.time() - 3600
    os.utime(abandoned, (an_hour_ago, an_hour_ago))
    ensure_whisper_base(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [in_progress.name, WHISPER_BASE_NAME]
    )
