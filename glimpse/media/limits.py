"""Which limit a rejection ran into, recorded on the row, so that stage repair can look
at the file again once that limit is raised (``glimpse.backfill.repair``)."""

from __future__ import annotations

from glimpse.config import LimitsSettings
from glimpse.media.reasons import RejectReason

#: media.metadata key: "<limit>=<value>" of the LimitsSettings field the file exceeded
REJECTED_UNDER = "rejected_under_limit"

_LIMIT_OF = {
    RejectReason.TOO_LARGE: "max_bytes",
    RejectReason.TOO_MANY_PIXELS: "max_pixels",
    RejectReason.TOO_LONG: "max_audio_seconds",
}


def limit_hit(reason: RejectReason, limits: LimitsSettings) -> str | None:
    """``"max_bytes=209715200"`` for a rejection by a limit; None for other reasons."""
    name = _LIMIT_OF.get(reason)
    return None if name is None else f"{name}={getattr(limits, name)}"


def raised_since(recorded: str, limits: LimitsSettings) -> bool:
    """Whether the limit named in ``recorded`` is higher now than it was then."""
    name, _, value = recorded.partition("=")
    if name not in _LIMIT_OF.values():
        return False
    try:
        return float(getattr(limits, name)) > float(value)
    except ValueError:
        return False
