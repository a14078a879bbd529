"""The tests' model builders (tests/models_fixtures.py: tiny BLIP and CLIP checkpoints
made from a config and ``save_pretrained``), for benchmarks that need a checkpoint
no wheel ships."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "models_fixtures.py"


def load_fixtures() -> ModuleType | None:
    """tests/models_fixtures.py, imported by path (tests/ is no package); None where the
    tests are not there (an installed copy)."""
    if not FIXTURES.is_file():
        return None
    spec = importlib.util.spec_from_file_location("models_fixtures", FIXTURES)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
