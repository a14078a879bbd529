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
from typing import Protocol, Self

import torch

from glimpse.models.device import DeviceSetting

log = logging.getLogger(__name__)


class ModelNotLoadedError(RuntimeError):
    """Inference or ``revision`` was asked of a model whose ``load()`` has not run."""

    def __init__(self, model_id: str) -> None:
        super().__init__(f"model {model_id} is not loaded; call load() at startup")
        self.model_id = model_id


class ModelObserver(Protocol):
    """Told about loads and inference calls (``glimpse.metrics.ModelMetrics``); plain
    values only, so what observes need not import torch."""

    def loaded(
        self, model_id: str, revision: str, device: str, requested_device: str, seconds: float
    ) -> None: ...

    def ran(self, model_id: str, seconds: float, items: int) -> None: ...


class InferenceModel(ABC):
    """A model with a stable id and a weights revision, loaded once, used from any thread."""

    def __init__(self, model_id: str, device: DeviceSetting = "cpu") -> None:
        # Stored with every result: what produced it, independent of file paths.
        self.model_id = model_id
        # What the settings asked for; ``device`` says where the model really runs
        # (``auto`` or ``cuda`` on a node without a usable GPU fall back to the CPU).
        self.requested_device: DeviceSetting = device
        # Subclasses that can use a GPU set it in _load (``select_device``).
        self._device = torch.device("cpu")
        self._observer: ModelObserver | None = None
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

    @property
    def device(self) -> str:
        """``cpu`` or ``cuda``: where the weights are, known once loaded."""
        if self._revision is None:
            raise ModelNotLoadedError(self.model_id)
        return self._device.type

    def report_to(self, observer: ModelObserver) -> Self:
        """Tell ``observer`` about the load and every inference call; before ``load()``."""
        self._observer = observer
        return self

    def load(self) -> None:
        """Load the weights; later calls, from any thread, return at once."""
        with self._load_lock:
            if self._revision is not None:
                return
            started = time.perf_counter()
            revision = self._load()
            # Set last: `loaded` turns true only once everything _load built is in place.
            self._revision = revision
        seconds = time.perf_counter() - started
        log.info(
            "loaded %s revision %s on %s in %.1f s", self.model_id, revision, self.device, seconds
        )
        if self._observer is not None:
            self._observer.loaded(
                self.model_id, revision, self.device, self.requested_device, seconds
            )

    @abstractmethod
    def _load(self) -> str:
        """Build the model from its weights; return the weights revision."""

    @contextmanager
    def _running(self, items: int = 1) -> Iterator[None]:
        """Guard one inference call over ``items`` inputs: loaded, one at a time, no
        autograd bookkeeping; timed (waiting for the lock not included) when it succeeds."""
        if self._revision is None:
            raise ModelNotLoadedError(self.model_id)
        with self._run_lock, torch.inference_mode():
            started = time.perf_counter()
            yield
            if self._observer is not None:
                self._observer.ran(self.model_id, time.perf_counter() - started, items)
