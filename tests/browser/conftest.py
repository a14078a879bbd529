"""The web page in a real browser: Debian's chromium driven by Playwright, a fake mic.

The microphone is chromium's fake capture device playing a WAV made with espeak-ng, so
the voice test speaks real words into the real MediaRecorder path. Screenshots of
every step land in ``tests/artifacts/`` (git-ignored).
"""

from __future__ import annotations

import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from browser_page import WebPage
from harness import RunningStack
from playwright.sync_api import Browser, BrowserContext, Playwright, sync_playwright
from speech_clips import speak, write_wav

CHROMIUM = Path("/usr/bin/chromium")
SPOKEN_QUERY = "a cup of coffee"
CAPTURE_RATE = 48_000  # chromium's fake capture wants 16-bit PCM; 48 kHz is its native rate


@pytest.fixture(scope="session")
def api_url(stack: RunningStack) -> str:
    return f"http://{stack.settings.api.host}:{stack.settings.api.port}"


@pytest.fixture(scope="session")
def admin_key(stack: RunningStack) -> str:
    return (stack.settings.home / "credentials" / "api-key").read_text().strip()


def _resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Linear interpolation: plenty for speech going up from espeak's 22.05 kHz."""
    duration = len(samples) / rate
    times = np.arange(int(duration * target)) / target
    return np.interp(times, np.arange(len(samples)) / rate, samples.astype(np.float64))


@pytest.fixture(scope="session")
def spoken_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``a cup of coffee`` spoken by espeak-ng, 16-bit mono 48 kHz, with silence around it
    (chromium loops the file: the pause keeps the repetitions apart)."""
    folder = tmp_path_factory.mktemp("voice")
    raw = speak(SPOKEN_QUERY, folder / "espeak.wav", speed=140)
    with wave.open(str(raw), "rb") as source:
        assert source.getsampwidth() == 2 and source.getnchannels() == 1
        rate = source.getframerate()
        samples = np.frombuffer(source.readframes(source.getnframes()), dtype="<i2")
    speech = _resample(samples / 32768.0, rate, CAPTURE_RATE)
    pause = np.zeros(CAPTURE_RATE // 2)
    clip = np.concatenate([pause, speech, pause])
    return write_wav(folder / "a-cup-of-coffee.wav", clip, CAPTURE_RATE)


# Module scope: a sync Playwright keeps an event loop running in this thread until it
# stops, which would break asyncio.run() in the tests that come after.
@pytest.fixture(scope="module")
def playwright_driver() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright_driver: Playwright, spoken_clip: Path) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium")
    launched = playwright_driver.chromium.launch(
        executable_path=str(CHROMIUM),
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--use-fake-ui-for-media-stream",  # answers the microphone prompt with yes
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={spoken_clip}",
        ],
    )
    try:
        yield launched
    finally:
        launched.close()


@pytest.fixture
def context(browser: Browser, api_url: str) -> Iterator[BrowserContext]:
    """A fresh profile per test: empty localStorage, so no key unless the test gives one."""
    ctx = browser.new_context(viewport={"width": 1200, "height": 900})
    ctx.grant_permissions(["microphone"], origin=api_url)
    ctx.set_default_timeout(15_000)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def web(
    context: BrowserContext, api_url: str, admin_key: str, request: pytest.FixtureRequest
) -> WebPage:
    return WebPage(context.new_page(), api_url, admin_key, request.node.name)
