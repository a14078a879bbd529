"""A rejection remembers the limit it ran into; raising that limit makes it worth a retry."""

from __future__ import annotations

from glimpse.config import LimitsSettings
from glimpse.media.limits import limit_hit, raised_since
from glimpse.media.reasons import RejectReason


def test_a_rejection_by_a_limit_names_the_limit_and_its_value() -> None:
    limits = LimitsSettings(max_bytes=1000, max_pixels=50, max_audio_seconds=60)
    assert limit_hit(RejectReason.TOO_LARGE, limits) == "max_bytes=1000"
    assert limit_hit(RejectReason.TOO_MANY_PIXELS, limits) == "max_pixels=50"
    assert limit_hit(RejectReason.TOO_LONG, limits) == "max_audio_seconds=60.0"
    assert limit_hit(RejectReason.UNDECODABLE, limits) is None  # no limit would change that


def test_only_a_higher_limit_of_the_same_name_is_worth_a_retry() -> None:
    assert raised_since("max_bytes=1000", LimitsSettings(max_bytes=2000))
    assert not raised_since("max_bytes=1000", LimitsSettings(max_bytes=1000))
    assert not raised_since("max_bytes=1000", LimitsSettings(max_bytes=500))
    assert raised_since("max_audio_seconds=60.0", LimitsSettings(max_audio_seconds=61))
    assert not raised_since("thumbnail_px=1", LimitsSettings())  # not a rejection limit
    assert not raised_since("max_bytes=lots", LimitsSettings())
