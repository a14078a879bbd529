"""Query embedders: the active text model's (and the active joint image-text model's,
when there is one), loaded and switched in the background.

Importing torch and loading MiniLM takes seconds (more while the workers load their
own models on the same cores); uploads, media and thumbnails don't need it. Until a
model is loaded, a search answers 503 with ``Retry-After`` instead of holding the
request.

A watcher thread reads the active text model from the registry every few seconds
(``search.model_check_s``). When another one is activated it loads that one from its
load spec while searches go on with the one loaded, then swaps. A search takes one
``Serving`` — an embedder and the model id whose vectors it queries — so a query vector
never meets another model's vectors, and a switch never fails a query. Before the
registry names any text model (a fresh stack), the configured model serves.

The joint role follows its active model the same way, with one difference: nothing
serves it until the registry has an active one (a caption worker registers it on
start), since before that there are no image vectors to compare a query with.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, Self

import numpy as np
import psycopg
from psycopg_pool import ConnectionPool

from glimpse.config import ModelSettings
from glimpse.db import stage_models, vectors
from glimpse.db.vectors import VectorKind, VectorModel
from glimpse.model_specs import settings_for

if TYPE_CHECKING:
    from glimpse.models.base import ModelObserver

log = logging.getLogger(__name__)


class QueryEncoder(Protocol):
    """What turns a query into a vector: ``TextEmbedder`` or ``JointModel``'s text side."""

    model_id: str

    @property
    def dim(self) -> int: ...

    def load(self) -> None: ...

    def report_to(self, observer: ModelObserver) -> Self: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


# The encoder ``ModelSettings`` configure for a role, not loaded; None: the role is off.
EncoderLoader = Callable[[ModelSettings], QueryEncoder | None]


def text_encoder(models: ModelSettings) -> QueryEncoder:
    from glimpse.models.text import load_text_embedder  # imports torch: seconds

    return load_text_embedder(models)


def joint_encoder(models: ModelSettings) -> QueryEncoder | None:
    from glimpse.models.joint import load_joint_model

    return load_joint_model(models)


class QueryModelLoading(RuntimeError):
    """A search came before the query model finished loading."""

    retry_after_s = 2


@dataclass(frozen=True, slots=True)
class Serving:
    """What one search uses: the embedder for its query and the model of the vectors
    that query is compared with (always the embedder's own)."""

    model: VectorModel
    embedder: QueryEncoder


@dataclass(frozen=True, slots=True)
class _Wanted:
    model: VectorModel
    spec: dict[str, Any]


class QueryModel:
    def __init__(
        self,
        models: ModelSettings,
        pool: ConnectionPool[psycopg.Connection[Any]],
        check_s: float = 2.0,
        retry_failed_s: float = 60.0,
        observer: ModelObserver | None = None,
        kind: VectorKind = "text",
        load: EncoderLoader = text_encoder,
        configured_until_registered: bool = True,
    ) -> None:
        self._models = models
        self._kind: VectorKind = kind
        self._load = load
        # Serve the configured model while the registry names none of this kind.
        self._configured_until_registered = configured_until_registered
        self._pool = pool
        self._check_s = check_s
        self._retry_failed_s = retry_failed_s
        self._observer = observer  # the API's model metrics
        self._serving: Serving | None = None
        self.error: BaseException | None = None  # the first load failed: nothing serves
        self.switch_error: str | None = None  # the active model could not be loaded
        self._failed: dict[str, float] = {}  # model id -> when loading it failed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"query-{kind}", daemon=True)

    def start_loading(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    @property
    def loaded(self) -> bool:
        return self._serving is not None

    def serving(self) -> Serving:
        serving = self._serving
        if serving is None:
            raise QueryModelLoading("the query model is still loading; retry in a moment")
        return serving

    def serving_if_any(self) -> Serving | None:
        """What serves now, or None (an optional role that is off or still loading)."""
        return self._serving

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow()
            except Exception:  # a database hiccup: the next check tries again
                log.warning("checking the active %s model failed", self._kind, exc_info=True)
            self._stop.wait(self._check_s)

    def _follow(self) -> None:
        try:
            wanted = self._wanted()
        except psycopg.Error:
            if self._serving is not None:
                raise
            wanted = None  # no database yet: the configured model serves meanwhile
        serving = self._serving
        if wanted is None:
            if serving is None and self.error is None and self._configured_until_registered:
                self._load_configured()
            return
        if serving is not None and serving.model.model == wanted.model.model:
            return
        failed_at = self._failed.get(wanted.model.model)
        if failed_at is not None and time.monotonic() - failed_at < self._retry_failed_s:
            return
        self._switch_to(wanted)

    def _wanted(self) -> _Wanted | None:
        with self._pool.connection() as conn:
            model = vectors.active_model(conn, self._kind)
            registered = stage_models.active(conn, self._kind)
        if model is None or registered is None or registered.model != model.model:
            return None
        return _Wanted(model, registered.spec)

    def _load_configured(self) -> None:
        try:
            embedder = self._load(self._models)
            if embedder is None:
                return  # the role is off
            if self._observer is not None:
                embedder.report_to(self._observer)
            embedder.load()
        except Exception as exc:  # reported by /readyz; the process stays up
            log.exception("loading the query model failed")
            self.error = exc
            return
        self._serving = Serving(VectorModel(embedder.model_id, self._kind, embedder.dim), embedder)

    def _switch_to(self, wanted: _Wanted) -> None:
        """Load the active model from its spec; searches use the old one until then."""
        model_id = wanted.model.model
        log.info("loading the active %s model %s for queries", self._kind, model_id)
        try:
            embedder = self._load(settings_for(self._models, wanted.spec))
            if embedder is None:
                raise ValueError("its load spec names no model")
            if embedder.model_id != model_id:
                raise ValueError(f"its load spec loads {embedder.model_id}, not {model_id}")
            if self._observer is not None:
                embedder.report_to(self._observer)
            embedder.load()
            if embedder.dim != wanted.model.dim:
                raise ValueError(f"it loads {embedder.dim}-d, its vectors are {wanted.model.dim}-d")
        except Exception as exc:
            self._failed[model_id] = time.monotonic()
            self.switch_error = f"{model_id}: {exc}"
            kept = self._serving.model.model if self._serving else "none"
            log.exception(
                "cannot load the active %s model %s; queries keep %s", self._kind, model_id, kept
            )
            return
        self._serving = Serving(wanted.model, embedder)  # one assignment: atomic for readers
        self.error = None
        self.switch_error = None
        log.info("queries now use %s", model_id)
