"""How an object says it came through glimpse's own upload API.

The API (direct uploads and presigned PUTs, where the header is signed and cannot be
left out) stores ``x-amz-meta-glimpse-upload: api`` with every file. Ingest removes
such a file again when it rejects it; objects written any other way are the owner's.
"""

from __future__ import annotations

from collections.abc import Mapping

#: user metadata key (S3 lower-cases these) and value marking an API upload
UPLOAD_METADATA: Mapping[str, str] = {"glimpse-upload": "api"}


def is_api_upload(metadata: Mapping[str, str]) -> bool:
    return all(metadata.get(key) == value for key, value in UPLOAD_METADATA.items())


def metadata_headers() -> dict[str, str]:
    """The same, as the headers a presigned PUT must send."""
    return {f"x-amz-meta-{key}": value for key, value in UPLOAD_METADATA.items()}
