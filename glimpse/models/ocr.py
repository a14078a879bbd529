"""Words in images, read by Tesseract through tesserocr.

tesserocr (not pytesseract): it calls Tesseract's C++ API in-process, so the engine and
its language model are loaded once per worker instead of once per image by a new
``tesseract`` process; it hands over Pillow images without a temporary file, gives
per-word confidences, releases the GIL while it reads, and takes a recognition timeout
that keeps what was read by then. Its wheel bundles libtesseract; the language data
comes from Debian's ``tesseract-ocr-eng`` (scripts/system-deps.sh).

Page segmentation "sparse text": photos hold scattered words (signs, labels, screens)
that the page layout mode sets aside as picture; pages are read as well either way.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from glimpse.models.base import InferenceModel
from glimpse.models.ocr_words import Dictionary, WordRules, keep

DEBIAN_TESSDATA = Path("/usr/share/tesseract-ocr/5/tessdata")


@dataclass(frozen=True, slots=True)
class ReadText:
    words: list[tuple[str, float]]  # kept words and their confidence, in reading order
    seen: int  # words Tesseract read, kept or not
    finished: bool  # False: the timeout stopped it; ``words`` is what was read by then

    @property
    def text(self) -> str:
        return " ".join(word for word, _ in self.words)


def tessdata_dir(configured: Path | None) -> Path:
    """Where the language data is: as configured, else $TESSDATA_PREFIX, else Debian's."""
    if configured is not None:
        return configured
    prefix = os.environ.get("TESSDATA_PREFIX")
    return Path(prefix) if prefix else DEBIAN_TESSDATA


class TextReader(InferenceModel):
    """Construct cheaply; ``load()`` opens the engine; ``read(image)`` from any thread
    (one image at a time: a Tesseract engine is not shared between threads)."""

    def __init__(
        self,
        tessdata: Path | None = None,
        language: str = "eng",
        timeout_ms: int = 2000,
        words_file: Path | None = None,
        rules: WordRules | None = None,
    ) -> None:
        super().__init__(f"tesseract/{language}")
        self.tessdata = tessdata_dir(tessdata)
        self.language = language
        self.timeout_ms = timeout_ms
        self.words_file = words_file
        self.rules = rules or WordRules()
        self._api: Any = None
        self._dictionary = Dictionary(())

    def _load(self) -> str:
        import tesserocr

        data = self.tessdata / f"{self.language}.traineddata"
        if not data.is_file():
            raise FileNotFoundError(
                f"no Tesseract language data at {data}: install tesseract-ocr-"
                f"{self.language} (scripts/system-deps.sh), set GLIMPSE_CUES__TESSDATA, "
                "or turn OCR off with GLIMPSE_CUES__OCR=false"
            )
        self._api = tesserocr.PyTessBaseAPI(
            path=str(self.tessdata), lang=self.language, psm=tesserocr.PSM.SPARSE_TEXT
        )
        if self.words_file is not None:
            self._dictionary = Dictionary.load(self.words_file)
        digest = hashlib.sha256(data.read_bytes())
        digest.update(str(self.rules).encode())
        version = tesserocr.tesseract_version().split()[1]
        return f"{version}-{digest.hexdigest()[:12]}"

    @property
    def dictionary_size(self) -> int:
        return len(self._dictionary)

    def read(self, image: Image.Image) -> ReadText:
        import tesserocr

        with self._running():
            self._api.SetImage(image)
            finished = bool(self._api.Recognize(timeout=self.timeout_ms))
            seen = _words(self._api, tesserocr.RIL.WORD)
            self._api.Clear()  # the image's memory, not the engine
        return ReadText(keep(seen, self._dictionary, self.rules), len(seen), finished)


def _words(api: Any, level: int) -> list[tuple[str, float]]:
    iterator = api.GetIterator()
    if iterator is None:
        return []
    import tesserocr

    words = []
    for result in tesserocr.iterate_level(iterator, level):
        try:
            text = result.GetUTF8Text(level)
        except RuntimeError:  # an empty word box
            continue
        if text and text.strip():
            words.append((text.strip(), float(result.Confidence(level))))
    return words
