"""Query models: the active text model's (and the visual and joint image-text models'),
loaded and switched in the background.

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

The same holds for the visual model that image searches use (``image_queries.py``) and
for the joint image-text model (CLIP, SigLIP) whose text side ranks the images
themselves: a ``QueryRole`` says which vectors a role queries and how its model is
built. The joint role serves nothing until the registry has an active joint model (a
caption worker registers it on start): before that no image vectors exist to compare with.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import psycopg
from psycopg_pool import ConnectionPool

from glimpse.config import ModelSettings
from glimpse.db import stage_models, vectors
from glimpse.db.vectors import VectorKind, VectorModel
from glimpse.model_specs import settings_for

if TYPE_CHECKING:
    from glimpse.models.base import InferenceModel, ModelObserver
    from glimpse.models.joint import JointModel
    from glimpse.models.text import TextEmbedder

log = logging.getLogger(__name__)

# A string bound: the model classes import torch, which this module must not at import.
M = TypeVar("M", bound="InferenceModel")


class QueryModelLoading(RuntimeError):
    """A search came before the query model finished loading."""

    retry_after_s = 2


@dataclass(frozen=True, slots=True)
class QueryRole(Generic[M]):
    """What a query model is for: the vectors it queries, how its model is built (not
    loaded yet) from settings, and the length of the vectors that model makes."""

    kind: VectorKind
    name: str  # in messages: "query model", "image model"
    build: Callable[[ModelSettings], M]
    dim: Callable[[M], int | None]
    # Serve the configured model while the registry has no active one of this kind.
    configured_until_registered: bool = True


def _text_embedder(models: ModelSettings) -> TextEmbedder:
    from glimpse.models.text import load_text_embedder  # imports torch: seconds

    return load_text_embedder(models)


def _text_dim(embedder: TextEmbedder) -> int:
    return embedder.dim


TEXT: QueryRole[TextEmbedder] = QueryRole("text", "query model", _text_embedder, _text_dim)


def _joint_model(models: ModelSettings) -> JointModel:
    from glimpse.models.joint import load_joint_model  # imports torch: seconds

    joint = load_joint_model(models)
    if joint is None:
        raise ValueError("no joint model is set (models.joint_model)")
    return joint


def _joint_dim(joint: JointModel) -> int:
    return joint.dim


JOINT: QueryRole[JointModel] = QueryRole(
    "joint", "joint image-text model", _joint_model, _joint_dim, configured_until_registered=False
)


@dataclass(frozen=True, slots=True)
class Serving(Generic[M]):
    """What one search uses: the embedder for its query and the model of the vectors
    that query is compared with (always the embedder's own)."""

    model: VectorModel
    embedder: M


@dataclass(frozen=True, slots=True)
class _Wanted:
    """The registry's active model of the role, with its load spec."""

    model: VectorModel
    spec: dict[str, Any]


class QueryModel(Generic[M]):
    def __init__(
        self,
        role: QueryRole[M],
        models: ModelSettings,
        pool: ConnectionPool[psycopg.Connection[Any]],
        check_s: float = 2.0,
        retry_failed_s: float = 60.0,
        observer: ModelObserver | None = None,
    ) -> None:
        self.role = role
        self._models = models
        self._pool = pool
        self._check_s = check_s
        self._retry_failed_s = retry_failed_s
        self._observer = observer  # the API's model metrics
        self._serving: Serving[M] | None = None
        self.error: BaseException | None = None  # the first load failed: nothing serves
        self.switch_error: str | None = None  # the active model could not be loaded
        self._failed: dict[str, float] = {}  # model id -> when loading it failed
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._watch, name=f"{role.kind}-query-model", daemon=True
        )

    def start_loading(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    @property
    def loaded(self) -> bool:
        return self._serving is not None

    def serving(self) -> Serving[M]:
        serving = self._serving
        if serving is None:
            raise QueryModelLoading(f"the {self.role.name} is still loading; retry in a moment")
        return serving

    def serving_if_any(self) -> Serving[M] | None:
        """What serves now, or None (an optional role that is off or still loading)."""
        return self._serving

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow()
            except Exception:  # a database hiccup: the next check tries again
                log.warning("checking the active %s model failed", self.role.kind, exc_info=True)
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
            if serving is None and self.error is None and self.role.configured_until_registered:
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
            model = vectors.active_model(conn, self.role.kind)
            registered = stage_models.active(conn, self.role.kind)
        if model is None or registered is None or registered.model != model.model:
            return None
        return _Wanted(model, registered.spec)

    def _load_configured(self) -> None:
        try:
            embedder = self._load(self._models)
            dim = self._dim(embedder)
        except Exception as exc:  # reported by /readyz; the process stays up
            log.exception("loading the %s failed", self.role.name)
            self.error = exc
            return
        self._serving = Serving(VectorModel(embedder.model_id, self.role.kind, dim), embedder)

    def _load(self, models: ModelSettings, model_id: str | None = None) -> M:
        """The model ``models`` configure, loaded; it must be ``model_id`` when given."""
        embedder = self.role.build(models)  # cheap: nothing read yet
        if model_id is not None and embedder.model_id != model_id:
            raise ValueError(f"its load spec loads {embedder.model_id}, not {model_id}")
        if self._observer is not None:
            embedder.report_to(self._observer)
        embedder.load()
        return embedder

    def _dim(self, embedder: M) -> int:
        dim = self.role.dim(embedder)
        if not dim:  # a captioner without visual vectors: nothing to search with
            raise ValueError(f"{embedder.model_id} makes no {self.role.kind} vectors")
        return dim

    def _switch_to(self, wanted: _Wanted) -> None:
        """Load the active model from its spec; searches use the old one until then."""
        model_id = wanted.model.model
        kind = self.role.kind
        log.info("loading the active %s model %s for queries", kind, model_id)
        try:
            embedder = self._load(settings_for(self._models, wanted.spec), model_id)
            dim = self._dim(embedder)
            if dim != wanted.model.dim:
                raise ValueError(f"it loads {dim}-d, its vectors are {wanted.model.dim}-d")
        except Exception as exc:
            self._failed[model_id] = time.monotonic()
            self.switch_error = f"{model_id}: {exc}"
            kept = self._serving.model.model if self._serving else "none"
            log.exception(
                "cannot load the active %s model %s; queries keep %s", kind, model_id, kept
            )
            return
        self._serving = Serving(wanted.model, embedder)  # one assignment: atomic for readers
        self.error = None
        self.switch_error = None
        log.info("queries now use %s", model_id)
