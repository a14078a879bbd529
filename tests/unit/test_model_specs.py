"""Load specs: what a registry row stores to load its model in another process."""

from __future__ import annotations

from pathlib import Path

import pytest

from glimpse.config import ModelSettings
from glimpse.model_specs import settings_for, spec_of


def test_a_text_spec_loads_the_same_model_with_the_loading_processs_own_placement() -> None:
    worker = ModelSettings(text_model="/models/e5", text_pooling="cls", device="cuda")
    spec = spec_of("text", worker)
    assert spec == {"text_model": "/models/e5", "text_model_id": "", "text_pooling": "cls",
                    "text_quantize": False}  # fmt: skip

    api = settings_for(ModelSettings(device="cpu", cache_dir=Path("/cache")), spec)

    assert (api.text_model, api.text_pooling) == ("/models/e5", "cls")
    assert (api.device, api.cache_dir) == ("cpu", Path("/cache"))  # where it runs: its own


def test_each_role_stores_only_what_defines_its_model() -> None:
    assert set(spec_of("transcriber", ModelSettings())) == {
        "whisper_model", "whisper_language", "whisper_beam_size"
    }  # fmt: skip
    assert spec_of("captioner", ModelSettings(captioner="blip"))["captioner"] == "blip"
    assert spec_of("visual", ModelSettings()) == spec_of("captioner", ModelSettings())


def test_a_spec_with_unknown_or_invalid_settings_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown settings"):
        settings_for(ModelSettings(), {"text_modle": "x"})
    with pytest.raises(ValueError):
        settings_for(ModelSettings(), {"text_pooling": "max"})
