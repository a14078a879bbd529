"""Load specs: the settings that make a model what it is, stored with its registry row.

A process that must load a model it was not configured with (the API following the
active text model) rebuilds its ``ModelSettings`` from the spec: the spec's fields
replace the process's own, everything about *where it runs* (device, threads, cache)
stays the process's. A spec names its source as the settings do: a hub id, a local
directory, or empty for the copy shipped in a wheel.
"""

from __future__ import annotations

from typing import Any, Literal

from glimpse.config import ModelSettings

Role = Literal["captioner", "transcriber", "text", "visual", "joint"]

# The ModelSettings fields that define each role's model (a visual model is its captioner).
_CAPTIONER = (
    "captioner",
    "blip_model",
    "blip_max_new_tokens",
    "trained_captioner",
    "labels_top_k",
    "labels_min_probability",
    "labels_described_min_probability",
    "labels_described",
    "labels_description_chars",
)
FIELDS: dict[Role, tuple[str, ...]] = {
    "captioner": _CAPTIONER,
    "visual": _CAPTIONER,
    "text": ("text_model", "text_model_id", "text_pooling", "text_quantize"),
    "transcriber": ("whisper_model", "whisper_language", "whisper_beam_size"),
    "joint": ("joint_model",),
}


def spec_of(role: Role, models: ModelSettings) -> dict[str, Any]:
    """What a registry row of ``role`` stores to load the model ``models`` configure."""
    dumped = models.model_dump(mode="json")
    return {name: dumped[name] for name in FIELDS[role]}


def settings_for(models: ModelSettings, spec: dict[str, Any]) -> ModelSettings:
    """``models`` with the spec's fields (validated; unknown fields are refused)."""
    unknown = set(spec) - set(ModelSettings.model_fields)
    if unknown:
        raise ValueError(f"load spec names unknown settings: {sorted(unknown)}")
    return ModelSettings.model_validate({**models.model_dump(), **spec})
