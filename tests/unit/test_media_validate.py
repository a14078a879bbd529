"""validate_media: what ingest accepts, what it turns away, and what it says about it."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import zipfile
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone

import pytest
from badfiles import (
    BadFile,
    GoodFile,
    bad_files,
    encoded_audio,
    good_files,
    jpeg,
    mp3_with_cover_art,
    png_bomb,
    zip_archive,
)
from PIL import ExifTags, Image

from glimpse.config import LimitsSettings
from glimpse.media import MediaKind, Rejected, RejectReason, ValidatedMedia, validate_media

LIMITS = LimitsSettings()
BAD = bad_files()
GOOD = good_files()


def rejection(data: bytes, limits: LimitsSettings = LIMITS) -> Rejected:
    with pytest.raises(Rejected) as caught:
        validate_media(data, limits)
    return caught.value


# ---------------------------------------------------------------- the corpus


@pytest.mark.parametrize("case", BAD, ids=lambda case: case.name)
def test_bad_file_is_rejected_with_its_reason_and_a_readable_message(case: BadFile) -> None:
    rejected = rejection(case.data, case.limits)

    assert rejected.reason is case.reason
    assert case.message_has in rejected.message
    # for humans: a sentence, not a repr or a bare library error
    assert rejected.message[0].islower() or rejected.message[0].isupper()
    assert "<_io." not in rejected.message
    assert not rejected.message.startswith("[Errno")


@pytest.mark.parametrize("case", GOOD, ids=lambda case: case.name)
def test_good_file_is_accepted_with_its_facts(case: GoodFile) -> None:
    media = validate_media(case.data, LIMITS)

    assert media.kind is case.kind
    assert media.mime == case.mime
    assert media.size_bytes == len(case.data)
    assert media.sha256 == hashlib.sha256(case.data).hexdigest()
    assert (media.width, media.height) == (case.width, case.height)
    if case.duration_s is None:
        assert media.duration_s is None
    else:
        assert media.duration_s == pytest.approx(case.duration_s, abs=0.1)
    assert json.loads(json.dumps(media.metadata)) == media.metadata
    assert all(isinstance(value, str) for value in media.metadata.values())
    if case.kind is MediaKind.IMAGE:
        assert media.thumbnail is not None
        assert media.thumbnail_mime == "image/jpeg"
    else:
        assert (media.thumbnail, media.thumbnail_mime, media.captured_at) == (None, None, None)


# ---------------------------------------------------------------- size and type


def test_size_limit_is_checked_before_anything_else() -> None:
    data = jpeg()

    assert validate_media(data, LimitsSettings(max_bytes=len(data))).size_bytes == len(data)
    rejected = rejection(data, LimitsSettings(max_bytes=len(data) - 1))
    assert rejected.reason is RejectReason.TOO_LARGE


def test_empty_file() -> None:
    assert rejection(b"").message == "file is 0 bytes"


def test_unsupported_type_names_what_was_detected() -> None:
    rejected = rejection(b"<!DOCTYPE html><html><body>hello</body></html>")

    assert rejected.reason is RejectReason.UNSUPPORTED_TYPE
    assert rejected.message == "looks like text/html, not an image or audio file"


def test_video_is_refused_even_when_it_has_sound() -> None:
    rejected = rejection(next(case.data for case in BAD if case.name == "clip.mp4"))

    assert rejected.reason is RejectReason.UNSUPPORTED_TYPE
    assert rejected.message.startswith("video is not supported")


# ---------------------------------------------------------------- polyglots and trailers


def test_jpeg_with_a_zip_appended_is_a_polyglot() -> None:
    polyglot = jpeg() + zip_archive()
    # Why it matters: any ZIP reader opens it, since ZIPs are read from the end.
    assert zipfile.ZipFile(io.BytesIO(polyglot)).namelist() == ["payload.html"]

    rejected = rejection(polyglot)

    assert rejected.reason is RejectReason.MIME_MISMATCH
    assert "ZIP archive" in rejected.message


def test_jpeg_header_followed_by_html_is_undecodable() -> None:
    rejected = rejection(jpeg()[:20] + b"<html><script>alert(1)</script></html>")

    assert rejected.reason is RejectReason.UNDECODABLE
    assert "starts like a JPEG but is not a readable JPEG image" in rejected.message


def test_camera_trailers_after_the_jpeg_end_are_accepted() -> None:
    """Motion photos append an MP4 and HDR photos a second JPEG: both are photos."""
    for name in ("motion.jpg", "gain-map.jpg", "padded.jpg"):
        case = next(case for case in GOOD if case.name == name)
        assert validate_media(case.data, LIMITS).mime == "image/jpeg"


def test_animated_gif_is_accepted_and_marked() -> None:
    media = validate_media(next(case.data for case in GOOD if case.name == "animated.gif"), LIMITS)

    assert (media.mime, media.width, media.height) == ("image/gif", 60, 40)
    assert media.metadata["animated"] == "true"


# ---------------------------------------------------------------- pixels


def test_decompression_bomb_is_refused_from_its_header() -> None:
    before = Image.MAX_IMAGE_PIXELS

    rejected = rejection(png_bomb())

    assert rejected.reason is RejectReason.TOO_MANY_PIXELS
    assert rejected.message == "image is 40000x40000 = 1600 Mpx, limit is 100 Mpx"
    assert before == Image.MAX_IMAGE_PIXELS  # Pillow's process-wide limit is left alone


def test_pixel_limit_comes_from_settings_not_from_pillow() -> None:
    data = jpeg(1000, 1000)

    assert validate_media(data, LimitsSettings(max_pixels=1_000_000)).width == 1000
    assert rejection(data, LimitsSettings(max_pixels=999_999)).reason is (
        RejectReason.TOO_MANY_PIXELS
    )


# ---------------------------------------------------------------- EXIF


def test_orientation_swaps_width_and_height() -> None:
    media = validate_media(jpeg(300, 200, orientation=6), LIMITS)

    assert (media.width, media.height) == (200, 300)
    assert media.metadata["orientation"] == "6"


def test_orientation_in_avif_is_honoured_too() -> None:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    out = io.BytesIO()
    Image.new("RGB", (96, 64)).save(out, "AVIF", exif=exif)  # stored as the container's irot

    media = validate_media(out.getvalue(), LIMITS)

    assert (media.width, media.height) == (64, 96)


def test_capture_time_with_offset_is_exact() -> None:
    data = jpeg(taken="2023:07:14 18:30:05", offset="+02:00", camera=("Canon", "EOS R6"))

    media = validate_media(data, LIMITS)

    assert media.captured_at == datetime(
        2023, 7, 14, 18, 30, 5, tzinfo=timezone(timedelta(hours=2))
    )
    assert media.metadata["captured_at_offset"] == "from_exif"
    assert media.metadata["camera_make"] == "Canon"
    assert media.metadata["camera_model"] == "EOS R6"


def test_capture_time_without_offset_is_taken_as_utc_and_says_so() -> None:
    media = validate_media(jpeg(taken="2019:01:02 03:04:05"), LIMITS)

    assert media.captured_at == datetime(2019, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert media.metadata["captured_at_offset"] == "assumed_utc"


@pytest.mark.parametrize("taken", ["0000:00:00 00:00:00", "    :  :     :  :  ", "yesterday"])
def test_capture_time_placeholders_mean_unknown(taken: str) -> None:
    media = validate_media(jpeg(taken=taken), LIMITS)

    assert media.captured_at is None
    assert "captured_at_offset" not in media.metadata


# ---------------------------------------------------------------- audio


def test_audio_facts() -> None:
    media = validate_media(encoded_audio("ogg", "libopus"), LIMITS)

    assert media.kind is MediaKind.AUDIO
    assert media.mime == "audio/ogg"
    assert media.duration_s == pytest.approx(2.0, abs=0.1)
    assert media.metadata["codec"] == "opus"
    assert media.metadata["sample_rate"] == "48000"
    assert media.metadata["channels"] == "1"


def test_audio_over_the_limit_stops_decoding_early() -> None:
    # WebM carries no trusted duration, so the decoded count is what trips the limit.
    rejected = rejection(encoded_audio("webm", "libopus"), LimitsSettings(max_audio_seconds=1.0))

    assert rejected.reason is RejectReason.TOO_LONG
    assert "longer than the limit of 1.0 s" in rejected.message


def test_cover_art_in_an_mp3_is_not_video() -> None:
    media = validate_media(mp3_with_cover_art(), LIMITS)

    assert media.mime == "audio/mpeg"
    assert media.duration_s == pytest.approx(2.0, abs=0.1)


def test_undecodable_audio_says_what_happened_in_words() -> None:
    # A WAV header with nothing sensible behind it: FFmpeg alone would only say
    # "Invalid data found when processing input".
    rejected = rejection(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(200))

    assert rejected.reason is RejectReason.UNDECODABLE
    assert rejected.message.startswith(
        "the file starts like WAV audio, but the rest cannot be read: "
        "it is damaged or not really WAV"
    )


# ---------------------------------------------------------------- the exception and threads


def test_rejected_reads_well_and_survives_pickling() -> None:
    rejected = rejection(b"")

    assert str(rejected) == "empty: file is 0 bytes"
    copy = pickle.loads(pickle.dumps(rejected))
    assert (copy.reason, copy.message) == (rejected.reason, rejected.message)


def test_concurrent_calls_give_the_same_answers() -> None:
    cases: list[BadFile | GoodFile] = [*BAD, *GOOD]

    def outcome(case: BadFile | GoodFile) -> str:
        limits = case.limits if isinstance(case, BadFile) else LIMITS
        try:
            media: ValidatedMedia = validate_media(case.data, limits)
        except Rejected as rejected:
            return str(rejected)
        return f"{media.mime} {media.sha256} {media.width} {media.duration_s}"

    sequential = [outcome(case) for case in cases]
    with ThreadPoolExecutor(max_workers=8) as pool:
        concurrent = list(pool.map(outcome, cases * 3))

    assert concurrent == sequential * 3
