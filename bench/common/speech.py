"""Spoken clips for the speech benchmarks: espeak-ng speech encoded as Ogg/Opus like a
voice note, made by tests/speech_clips.py (the tests' own generator)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from bench.common.report import REPO

CLIPS = REPO / "tests" / "speech_clips.py"


def speech_clips_module() -> ModuleType:
    """tests/speech_clips.py, imported by path (tests/ is no package)."""
    spec = importlib.util.spec_from_file_location("speech_clips", CLIPS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def spoken_ogg(text: str, folder: Path, name: str) -> tuple[bytes, float]:
    """``text`` spoken (espeak-ng, 150 words/min) as Ogg/Opus bytes, and its seconds."""
    speech = speech_clips_module()
    wav = speech.speak(text, folder / f"{name}.wav")
    return speech.encode(wav, "ogg").read_bytes(), float(speech.wav_seconds(wav))
