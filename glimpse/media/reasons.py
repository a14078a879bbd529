"""Why ingest turns a file away: a closed set of reasons plus words for humans."""

from __future__ import annotations

from enum import StrEnum


class MediaKind(StrEnum):
    IMAGE = "image"
    AUDIO = "audio"


class RejectReason(StrEnum):
    """Stored on the media row; values are part of the schema, never rename them."""

    EMPTY = "empty"
    TOO_LARGE = "too_large"
    UNSUPPORTED_TYPE = "unsupported_type"
    MIME_MISMATCH = "mime_mismatch"
    UNDECODABLE = "undecodable"
    TOO_MANY_PIXELS = "too_many_pixels"
    TOO_LONG = "too_long"
    NO_SPEECH = "no_speech"  # audio that decodes but holds nothing to transcribe


class Rejected(Exception):
    """The input is not acceptable. ``message`` says what was wrong, in words."""

    reason: RejectReason
    message: str

    def __init__(self, reason: RejectReason, message: str) -> None:
        # Both go to Exception.args so the exception pickles (process pools, DLQ payloads).
        super().__init__(reason, message)
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.message}"
