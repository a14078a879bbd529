"""The contract every model follows: construct cheaply, ``load()`` once at worker start.

Construction reads no weights, so a service can build its models, start its health
server, and report ready only after ``load()`` returned. Inference before ``load()``
raises instead of loading lazily: a hidden multi-second load inside the first
request is exactly what readiness exists to prevent.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager

import torch

log = logging.getLogger(__name__)


class ModelNotLoadedError(RuntimeError):
    """Inference or ``revision`` was asked of a model whose ``load()`` has not run."""

    def __init__(self, model_id: str) -> None:
        super().__init__(f"model {model_id} is not loaded; call load() at startup")
        self.model_id = model_id


class InferenceModel(ABC):
    """A model with a stable id and a weights revision, loaded once, used from any thread."""

    def __init__(self, model_id: str) -> None:
        # Stored with every result: what produced it, independent of file paths.
        self.model_id = model_id
        self._revision: str | None = None
        self._load_lock = threading.Lock()
        # Tokenizers are not safe to share between threads ("Already borrowed"), and
        # two forward passes at once only fight over the same cores; run one at a time.
        self._run_lock = threading.Lock()

    @property
    def revision(self) -> str:
        """Changes whenever the weights change; known once loaded."""
        if self._revision is None:
            raise ModelNotLoadedError(self.model_id)
        return self._revision

    @property
    def loaded(self) -> bool:
        return self._revision is not None

    def load(self) -> None:
        """Load the weights; later calls, from any thread, return at once."""
        with self._load_lock:
            if self._revision is not None:
                return
            started = time.perf_counter()
            revision = self._load()
            # Set last: `loaded` turns true only once everything _load built is in place.
            self._revision = revision
        log.info(
            "loaded %s revision %s in %.1f s",
            self.model_id,
            revision,
            time.perf_counter() - started,
        )

    @abstractmethod
    def _load(self) -> str:
        """Build the model from its weights; return the weights revision."""

    @contextmanager
    def _running(self) -> Iterator[None]:
        """Guard one inference call: loaded, one at a time, no autograd bookkeeping."""
        if self._revision is None:
            raise ModelNotLoadedError(self.model_id)
        with self._run_lock, torch.inference_mode():
            yield
