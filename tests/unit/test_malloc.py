"""Freed image buffers go back to the OS: with a decode budget admitting one image at a
time, four threads peak at about one decode, not at one decode per thread."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

DECODES = textwrap.dedent(
    """
    import io, json, sys
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    import numpy as np
    from PIL import Image

    from glimpse.malloc import release_large_frees

    released = sys.argv[1] == "release" and release_large_frees()
    from glimpse.config import LimitsSettings
    from glimpse.media import validate_media
    from glimpse.media.budget import DecodeBudget

    def kib(field):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])

    side, count = 4000, int(sys.argv[2])  # 16-MP progressive JPEGs
    blocks = np.random.default_rng(0).integers(0, 255, (side // 8, side // 8, 3), np.uint8)
    pixels = np.kron(blocks, np.ones((8, 8, 1), np.uint8))
    images = []
    for i in range(count):
        pixels[i] = 255
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, "JPEG", quality=85, progressive=True)
        images.append(out.getvalue())
    del pixels, blocks
    small = io.BytesIO()
    Image.new("RGB", (64, 64)).save(small, "JPEG")
    limits = LimitsSettings()
    validate_media(small.getvalue(), limits)  # libmagic and Pillow's plugins load
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # VmHWM from here on
    ready = kib("VmRSS")
    budget = DecodeBudget(20_000_000)  # one image at a time
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda data: validate_media(data, limits, budget.admit), images))
    print(json.dumps({"released": released, "growth_kib": kib("VmHWM") - ready}))
    """
)


def peak_growth(mode: str, images: int) -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", DECODES, mode, str(images)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, int] = json.loads(done.stdout)
    return result


def test_threads_taking_turns_peak_at_about_one_decode() -> None:
    one = peak_growth("release", 1)
    eight = peak_growth("release", 8)

    assert eight["released"]
    assert eight["growth_kib"] < 1.5 * one["growth_kib"]
