"""Real Tesseract (through tesserocr) on rendered text."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from bench.common.text_images import (
    SCREEN_LINES,
    noise,
    page,
    screenshot,
    sign,
    smooth_photo,
    thumbnail,
)
from glimpse.config import CueSettings
from glimpse.models.base import ModelNotLoadedError
from glimpse.models.cues import CueReader, searchable_text
from glimpse.models.ocr import TextReader

WORDS_FILE = CueSettings().ocr_words_file
# Tesseract's timeout is wall time: a loaded test machine must not cut a reading short
UNHURRIED = CueSettings(ocr_timeout_ms=120_000)


@pytest.fixture(scope="module")
def reader() -> TextReader:
    reader = TextReader(timeout_ms=UNHURRIED.ocr_timeout_ms, words_file=WORDS_FILE)
    reader.load()
    return reader


@pytest.fixture(scope="module")
def cues() -> CueReader:
    cues = CueReader(UNHURRIED)
    cues.load()
    return cues


def test_a_page_is_read_word_for_word(reader: TextReader) -> None:
    read = reader.read(page())

    assert read.finished
    assert {"harbour", "committee", "lighthouse", "fishermen", "winter"} <= set(
        read.text.lower().split()
    )


def test_a_sign_in_a_photo_is_read(reader: TextReader) -> None:
    assert "HARBOUR" in reader.read(sign("HARBOUR")).text.split()


def test_noise_reads_as_nothing(reader: TextReader) -> None:
    assert reader.read(noise()).text == ""
    assert reader.read(smooth_photo()).text == ""


def test_recognition_stops_at_the_timeout_and_keeps_what_it_read() -> None:
    hurried = TextReader(timeout_ms=1, words_file=WORDS_FILE)
    hurried.load()

    read = hurried.read(page(width=1600))

    assert not read.finished


def test_reading_before_load_is_refused() -> None:
    with pytest.raises(ModelNotLoadedError):
        TextReader().read(smooth_photo())


def test_missing_language_data_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="tesseract-ocr-eng"):
        TextReader(tessdata=tmp_path).load()


def test_the_revision_follows_the_language_data_and_rules(reader: TextReader) -> None:
    stricter = TextReader(words_file=WORDS_FILE)
    stricter.rules = type(reader.rules)(min_confidence=80)
    stricter.load()

    assert reader.revision.startswith("5.")
    assert stricter.revision != reader.revision


class Originals:
    """Hands out the original at the size asked, and counts the asks."""

    def __init__(self, image: Image.Image) -> None:
        self.image = image
        self.sides: list[int] = []

    def __call__(self, side: int) -> Image.Image:
        self.sides.append(side)
        return thumbnail(self.image, side)


def test_small_text_is_read_from_the_original(cues: CueReader) -> None:
    original = Originals(screenshot())

    found = cues.read(thumbnail(screenshot()), original)

    assert original.sides and 512 < original.sides[0] <= UNHURRIED.ocr_max_side_px
    assert found.ocr_ran
    for line in SCREEN_LINES:
        assert line in found.ocr_text
    assert found.colours[0][0] == "white"


def test_a_photo_without_text_is_never_read(cues: CueReader) -> None:
    original = Originals(smooth_photo(2000, 1500))

    found = cues.read(thumbnail(smooth_photo(2000, 1500)), original)

    assert (found.ocr_ran, found.ocr_text, original.sides) == (False, "", [])
    assert [name for name, _ in found.colours] == ["blue", "green"]


def test_without_ocr_only_colours_are_read() -> None:
    cues = CueReader(CueSettings(ocr=False))
    cues.load()

    found = cues.read(thumbnail(page()))

    assert found.ocr_text == "" and found.colours
    assert cues.version.startswith("ocr=-;") and cues.version.endswith(";colours=v1")


def test_the_vector_text_holds_the_caption_then_the_first_words_and_colours() -> None:
    settings = CueSettings(embed_ocr_words=3)

    text = searchable_text("A photo of a sign.", "BUS STOP HERE NOW", [("green", 0.6)], settings)

    assert text == 'A photo of a sign. It reads: "BUS STOP HERE". Colours: green.'
    bare = CueSettings(embed_ocr_words=0, embed_colours=False)
    assert searchable_text("A photo.", "BUS STOP", [("green", 0.6)], bare) == "A photo."
