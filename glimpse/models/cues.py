"""Cues the captioner's labels miss, read from the image the caption stage decoded:
the words written in it (OCR) and the names of its dominant colours.

    reader = CueReader.from_settings(settings.cues)   # cheap
    reader.load()                                     # at worker start
    cues = reader.read(thumbnail, original=lambda side: ...)

OCR runs only where the gate (glimpse/models/text_gate.py) sees lines of text in the
thumbnail. Text that is small in the thumbnail is read from the original, decoded at
the size that makes it legible (at most ``ocr_max_side_px``): a screenshot or a page
photographed at 12 MP is unreadable at 512 px.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import Image

from glimpse.config import CueSettings
from glimpse.models.base import ModelObserver
from glimpse.models.colours import dominant_colours
from glimpse.models.ocr import TextReader
from glimpse.models.ocr_words import WordRules
from glimpse.models.text_gate import look_for_text

log = logging.getLogger(__name__)

# Tesseract reads best with letters about this tall (px); the gate's median mark is
# roughly a lower-case letter or a short word.
_LEGIBLE_PX = 24.0
# lined-up marks in the thumbnail that are worth a Tesseract pass
MIN_MARKS = 12
# Opens the original scaled so its long side is at most the given px; None: unavailable.
OriginalLoader = Callable[[int], Image.Image | None]


@dataclass(frozen=True, slots=True)
class ImageCues:
    ocr_text: str = ""  # words read in the image, kept ones only, in reading order
    colours: list[tuple[str, float]] = field(default_factory=list)  # (name, share)
    ocr_ran: bool = False  # the gate let Tesseract read it (bench/quality.py counts them)


class CueReader:
    def __init__(self, settings: CueSettings, observer: ModelObserver | None = None) -> None:
        self.settings = settings
        self.text_reader = (
            TextReader(
                settings.tessdata,
                settings.ocr_language,
                settings.ocr_timeout_ms,
                settings.ocr_words_file,
                WordRules(settings.ocr_min_confidence, settings.ocr_sure_confidence),
            )
            if settings.ocr
            else None
        )
        if self.text_reader is not None and observer is not None:
            self.text_reader.report_to(observer)

    def load(self) -> None:
        if self.text_reader is not None:
            self.text_reader.load()

    @property
    def version(self) -> str:
        """Changes when what the cues would say changes: stored with them, so a replay
        with the same reader computes nothing twice and a new one reads again."""
        ocr = (
            f"{self.text_reader.model_id}@{self.text_reader.revision}" if self.text_reader else "-"
        )
        gate = f"gate={MIN_MARKS}/{_LEGIBLE_PX:g}/{self.settings.ocr_max_side_px}"
        return f"ocr={ocr};{gate};colours={'v1' if self.settings.colours else '-'}"

    def read(self, thumbnail: Image.Image, original: OriginalLoader | None = None) -> ImageCues:
        colours = dominant_colours(thumbnail) if self.settings.colours else []
        if self.text_reader is None:
            return ImageCues(colours=colours)
        evidence = look_for_text(thumbnail)
        if not evidence.likely(MIN_MARKS) or evidence.height_px is None:
            return ImageCues(colours=colours)
        image = self._legible(thumbnail, evidence.height_px, original)
        read = self.text_reader.read(image)
        if not read.finished:
            log.info(
                "OCR stopped after %d ms on a %s image", self.settings.ocr_timeout_ms, image.size
            )
        return ImageCues(read.text, colours, ocr_ran=True)

    def _legible(
        self, thumbnail: Image.Image, text_px: float, original: OriginalLoader | None
    ) -> Image.Image:
        """The image to read: scaled so its text is about _LEGIBLE_PX tall, from the
        original when that needs more pixels than the thumbnail has."""
        limit = self.settings.ocr_max_side_px
        scale = _LEGIBLE_PX / text_px
        long_side = max(thumbnail.size)
        wanted = min(round(long_side * scale), limit)
        if scale > 1.05 and original is not None:
            larger = original(wanted)
            if larger is not None and max(larger.size) > long_side:
                return _fit(larger, wanted)
        # upscaling the thumbnail still helps small text, up to twice
        return _fit(thumbnail, min(wanted, long_side * 2, limit))


def searchable_text(caption: str, ocr_text: str, colours: list[tuple[str, float]],
                    settings: CueSettings) -> str:  # fmt: skip
    """What the text vector is made from: the caption, then the first
    ``embed_ocr_words`` words read in the image and the colour names (if enabled)."""
    parts = [caption.strip()]
    words = ocr_text.split()[: settings.embed_ocr_words]
    if words:
        parts.append(f'It reads: "{" ".join(words)}".')
    if colours and settings.embed_colours:
        parts.append(f"Colours: {', '.join(name for name, _ in colours)}.")
    return " ".join(part for part in parts if part)


def _fit(image: Image.Image, long_side: int) -> Image.Image:
    width, height = image.size
    if max(width, height) == long_side:
        return image
    ratio = long_side / max(width, height)
    size = (max(1, round(width * ratio)), max(1, round(height * ratio)))
    return image.resize(size, Image.Resampling.LANCZOS)
