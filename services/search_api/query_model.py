"""The query embedder, loaded on a background thread so the API serves at once.

Importing torch and loading MiniLM takes seconds (more while the workers load their
own models on the same cores); uploads, media and thumbnails don't need it. Until it
is loaded, a search answers 503 with ``Retry-After`` instead of holding the request.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from glimpse.config import ModelSettings

if TYPE_CHECKING:
    from glimpse.models.base import ModelObserver
    from glimpse.models.text import Matrix, TextEmbedder

log = logging.getLogger(__name__)


class QueryModelLoading(RuntimeError):
    """A search came before the query model finished loading."""

    retry_after_s = 2


class QueryModel:
    def __init__(self, models: ModelSettings, observer: ModelObserver | None = None) -> None:
        self._models = models
        self._observer = observer  # the API's model metrics
        self._embedder: TextEmbedder | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._load, name="load-query-model", daemon=True)

    def start_loading(self) -> None:
        self._thread.start()

    @property
    def loaded(self) -> bool:
        return self._embedder is not None

    def embed(self, texts: Sequence[str]) -> Matrix:
        embedder = self._embedder
        if embedder is None:
            raise QueryModelLoading("the query model is still loading; retry in a moment")
        return embedder.embed(texts)

    def _load(self) -> None:
        try:
            from glimpse.models.text import load_text_embedder  # imports torch: seconds

            embedder = load_text_embedder(self._models)
            if self._observer is not None:
                embedder.report_to(self._observer)
            embedder.load()
            self._embedder = embedder
        except BaseException as exc:  # reported by /readyz; the process stays up
            log.exception("loading the query model failed")
            self.error = exc
