"""The text-to-visual bridge the API serves (``glimpse/models/bridge.py``): typed and
spoken queries also rank the images themselves when no joint model is active.

A watcher thread follows the text and visual query models: once both serve, it loads
the bridge between them from the cache or fits it (seconds, in the background: searches
go on without the image list until then), and again after either model switches. A
search takes the bridge only when it was fitted for the very text model whose vector it
has in hand, so a switch never pairs a query vector with a bridge from another model.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from glimpse.db.vectors import VectorModel
from glimpse.models.bridge import Matrix, TextToVisual, build, cache_path, load_or_build
from services.search_api.query_model import QueryModel, Serving

if TYPE_CHECKING:
    from glimpse.models.captioning import Captioner
    from glimpse.models.text import TextEmbedder

log = logging.getLogger(__name__)

# Texts per embedding call while fitting: searches take the model's lock in between.
_FIT_CHUNK = 64


@dataclass(frozen=True, slots=True)
class BridgeServing:
    model: VectorModel  # the visual vectors the bridged query is compared with
    bridge: TextToVisual


class VisualBridge:
    def __init__(
        self,
        text: QueryModel[TextEmbedder],
        visual: QueryModel[Captioner] | None,
        cache_dir: Path,
        check_s: float = 2.0,
    ) -> None:
        self._text = text
        self._visual = visual
        self._cache_dir = cache_dir
        self._check_s = check_s
        self._serving: BridgeServing | None = None
        self._unbridgeable: set[tuple[str, str]] = set()  # no class space, or fitting failed
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="visual-bridge", daemon=True)

    def start(self) -> None:
        if self._visual is not None:  # image search off: no visual model to bridge to
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def serving(self, text_model: str) -> BridgeServing | None:
        """The bridge from ``text_model``'s vectors, or None (none fitted for it yet)."""
        serving = self._serving
        if serving is None or serving.bridge.text_model != text_model:
            return None
        return serving

    def status(self) -> str:
        """For /readyz: off, fitting, ok, or why there is none."""
        if self._visual is None:
            return "off"
        if self._serving is not None:
            return "ok"
        return self.error or "fitting"

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow()
            except Exception as exc:  # logged; the next check tries another pair
                log.exception("fitting the text-to-visual bridge failed")
                self.error = f"error: {exc}"
            self._stop.wait(self._check_s)

    def _follow(self) -> None:
        assert self._visual is not None
        text = self._text.serving_if_any()
        visual = self._visual.serving_if_any()
        if text is None or visual is None:
            return
        pair = (text.model.model, visual.model.model)
        serving = self._serving
        if serving is not None and (serving.bridge.text_model, serving.model.model) == pair:
            return
        if pair in self._unbridgeable:
            return
        try:
            bridge = self._bridge(text, visual)
        except Exception:
            self._unbridgeable.add(pair)  # not again for this pair: a switch may help
            raise
        if bridge is None:
            self._unbridgeable.add(pair)
            self.error = f"off: {visual.model.model} has no classes to bridge words to"
            return
        self._serving = BridgeServing(visual.model, bridge)  # one assignment: atomic
        self.error = None
        log.info("text-to-visual bridge ready: %s -> %s", *pair)

    def _bridge(
        self, text: Serving[TextEmbedder], visual: Serving[Captioner]
    ) -> TextToVisual | None:
        space = visual.embedder.class_space()
        if space is None:
            return None
        embedder = text.embedder

        def embed(texts: Sequence[str]) -> Matrix:
            chunks = range(0, len(texts), _FIT_CHUNK)
            return np.concatenate([embedder.embed(texts[i : i + _FIT_CHUNK]) for i in chunks])

        text_id, visual_id = text.model.model, visual.model.model
        path = cache_path(
            self._cache_dir,
            f"{text_id}@{embedder.revision}",
            f"{visual_id}@{visual.embedder.revision}",
        )
        return load_or_build(
            path, lambda: build(space, embed, text_id, visual_id), text_id, visual_id
        )
