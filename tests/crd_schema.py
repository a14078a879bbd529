"""Custom resources (KEDA, prometheus-operator) checked offline against their CRDs' schemas.

``cloudcoil-models-keda`` and ``cloudcoil-models-prometheus-operator`` (dev extra) hold
pydantic models generated from the CRDs; they accept unknown keys, so ``crd_problems``
also reports every key the schema does not define (a misspelt ``minReplicas`` would
otherwise pass and be dropped by the API server). Trigger ``metadata`` is a free-form
string map in the KEDA CRD: the tests check the keys glimpse relies on by hand.
"""

from __future__ import annotations

from typing import Any

import pydantic
from cloudcoil.models.keda.v1alpha1 import ScaledObject
from cloudcoil.models.prometheus_operator.v1 import PodMonitor

MODELS: dict[tuple[str, str], type[pydantic.BaseModel]] = {
    ("keda.sh/v1alpha1", "ScaledObject"): ScaledObject,
    ("monitoring.coreos.com/v1", "PodMonitor"): PodMonitor,
}
API_GROUPS = {api.split("/")[0] for api, _ in MODELS}


def crd_problems(obj: dict[str, Any]) -> list[str]:
    """What is wrong with ``obj`` by the CRD schema: validation errors and unknown keys."""
    model = MODELS.get((obj["apiVersion"], obj["kind"]))
    if model is None:
        return [f"no schema for {obj['apiVersion']} {obj['kind']}"]
    try:
        parsed = model.model_validate(obj)
    except pydantic.ValidationError as exc:
        return [str(error) for error in exc.errors()]
    return unknown_keys(parsed, obj, obj["kind"])


def unknown_keys(model: pydantic.BaseModel, data: dict[str, Any], path: str) -> list[str]:
    fields = type(model).model_fields
    by_key = {(info.alias or name): name for name, info in fields.items()}
    problems = []
    for key, value in data.items():
        if key not in by_key:
            problems.append(f"{path}.{key}: not in the schema")
            continue
        parsed = getattr(model, by_key[key])
        if isinstance(parsed, pydantic.BaseModel) and isinstance(value, dict):
            problems += unknown_keys(parsed, value, f"{path}.{key}")
        elif isinstance(parsed, list) and isinstance(value, list):
            for i, (item, raw) in enumerate(zip(parsed, value, strict=True)):
                if isinstance(item, pydantic.BaseModel) and isinstance(raw, dict):
                    problems += unknown_keys(item, raw, f"{path}.{key}[{i}]")
    return problems
