"""Which torch device a model runs on."""

from __future__ import annotations

import logging
from typing import Literal

import torch

log = logging.getLogger(__name__)

DeviceSetting = Literal["auto", "cpu", "cuda"]


def select_device(setting: DeviceSetting) -> torch.device:
    """``auto`` and ``cuda`` use the GPU when one is present; anything else runs on the CPU."""
    if setting == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if setting == "cuda":
        # A worker that refuses to start is worse than a slow one: search keeps working.
        log.warning("models.device is cuda but no GPU is available; running on the CPU")
    return torch.device("cpu")


def limit_cpu_threads(threads: int) -> None:
    """Use at most ``threads`` CPU threads for torch's operators (0: leave the default)."""
    if threads > 0:
        torch.set_num_threads(threads)
