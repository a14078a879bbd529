"""Model metrics: what a worker's /metrics says about its models' loads, device and calls."""

from __future__ import annotations

import pytest
import torch
from models_fixtures import photo
from prometheus_client import CollectorRegistry

from glimpse.config import ModelSettings
from glimpse.metrics import ModelMetrics
from glimpse.models import load_captioner, load_text_embedder
from glimpse.models.base import InferenceModel


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


class Doubler(InferenceModel):
    """A real InferenceModel whose weights are one number."""

    def _load(self) -> str:
        self._factor = 2
        return "rev-1"

    def run(self, values: list[int], fail: bool = False) -> list[int]:
        with self._running(items=len(values)):
            if fail:
                raise ValueError("bad input")
            return [v * self._factor for v in values]


def test_a_load_and_each_successful_call_are_recorded() -> None:
    registry = CollectorRegistry()
    model = Doubler("test/doubler").report_to(ModelMetrics(registry, "caption"))
    model.load()
    model.load()  # idempotent: recorded once
    info = {
        "service": "caption",
        "model": "test/doubler",
        "revision": "rev-1",
        "device": "cpu",
        "requested_device": "cpu",
    }
    assert value(registry, "glimpse_model_info", **info) == 1
    ids = {"service": "caption", "model": "test/doubler"}
    load_seconds = value(registry, "glimpse_model_load_seconds", **ids)
    assert load_seconds is not None and load_seconds >= 0
    # series exist at 0 before the first call
    assert value(registry, "glimpse_model_inference_seconds_count", **ids) == 0

    assert model.run([1, 2, 3]) == [2, 4, 6]
    model.run([4])
    with pytest.raises(ValueError, match="bad input"):
        model.run([5, 6], fail=True)
    assert value(registry, "glimpse_model_inference_seconds_count", **ids) == 2
    assert value(registry, "glimpse_model_inference_items_total", **ids) == 4


@pytest.mark.skipif(torch.cuda.is_available(), reason="shows the fallback of a GPU-less node")
def test_a_model_asked_for_cuda_on_a_node_without_one_says_it_runs_on_the_cpu() -> None:
    registry = CollectorRegistry()
    embedder = load_text_embedder(ModelSettings(device="cuda"))
    embedder.report_to(ModelMetrics(registry, "embed")).load()
    assert (embedder.requested_device, embedder.device) == ("cuda", "cpu")
    labels = {"service": "embed", "model": embedder.model_id, "revision": embedder.revision}
    fallback = value(
        registry, "glimpse_model_info", **labels, device="cpu", requested_device="cuda"
    )
    assert fallback == 1
    embedder.embed(["a cat", "a cup of coffee"])
    ids = {"service": "embed", "model": embedder.model_id}
    assert value(registry, "glimpse_model_inference_items_total", **ids) == 2


def test_a_captioner_counts_images_per_call() -> None:
    registry = CollectorRegistry()
    captioner = load_captioner(ModelSettings(device="cpu"))
    captioner.report_to(ModelMetrics(registry, "caption")).load()
    captioner.predict([photo("cat"), photo("coffee")])
    ids = {"service": "caption", "model": captioner.model_id}
    assert value(registry, "glimpse_model_inference_items_total", **ids) == 2
    # Lite0 runs one image per forward pass on the CPU, but predict() is one call
    assert value(registry, "glimpse_model_inference_seconds_count", **ids) == 1


def test_before_load_the_device_is_not_known() -> None:
    with pytest.raises(RuntimeError, match="not loaded"):
        _ = Doubler("test/doubler").device
