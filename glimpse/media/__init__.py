"""Media validation for ingest: pure functions on bytes (no S3, database or Kafka).

result = validate_media(data, settings.limits)   # ValidatedMedia, or raises Rejected
"""

from glimpse.media.reasons import MediaKind, Rejected, RejectReason
from glimpse.media.result import ValidatedMedia
from glimpse.media.thumbnail import THUMBNAIL_MIME, make_thumbnail
from glimpse.media.validate import validate_media

__all__ = [
    "THUMBNAIL_MIME",
    "MediaKind",
    "RejectReason",
    "Rejected",
    "ValidatedMedia",
    "make_thumbnail",
    "validate_media",
]
