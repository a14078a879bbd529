"""The text gate sees lines of letters, dark or light, and passes over plain photos."""

from __future__ import annotations

from PIL import ImageOps

from bench.common.text_images import noise, page, screenshot, sign, smooth_photo, thumbnail
from glimpse.models.cues import MIN_MARKS
from glimpse.models.text_gate import look_for_text


def test_a_printed_page_shows_lines_of_text_and_their_size() -> None:
    evidence = look_for_text(thumbnail(page()))

    assert evidence.likely(MIN_MARKS)
    assert evidence.height_px is not None and 4 <= evidence.height_px <= 30


def test_light_text_on_a_dark_ground_is_seen_too() -> None:
    inverted = ImageOps.invert(thumbnail(page()))

    assert look_for_text(inverted).likely(MIN_MARKS)


def test_small_text_of_a_screenshot_is_seen_in_its_thumbnail() -> None:
    evidence = look_for_text(thumbnail(screenshot()))

    assert evidence.likely(MIN_MARKS)
    assert evidence.height_px is not None and evidence.height_px < 12  # read the original


def test_a_sign_in_a_scene_is_seen() -> None:
    assert look_for_text(thumbnail(sign("HARBOUR MARKET"))).likely(MIN_MARKS)


def test_photos_without_writing_pass() -> None:
    assert look_for_text(smooth_photo()).marks == 0
    assert not look_for_text(noise()).likely(MIN_MARKS)
