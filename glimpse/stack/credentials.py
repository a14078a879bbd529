"""S3 credentials of the embedded store: generated once, kept in files only the owner reads."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class S3Credentials:
    access_key: str
    secret_key: str


def write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    path.chmod(0o600)


def load_or_create(path: Path) -> S3Credentials:
    """The credentials stored at ``path``; new random ones on first use."""
    if path.exists():
        data = json.loads(path.read_text())
        return S3Credentials(data["access_key"], data["secret_key"])
    creds = S3Credentials("glimpse" + secrets.token_hex(6), secrets.token_urlsafe(30))
    write_private(
        path, json.dumps({"access_key": creds.access_key, "secret_key": creds.secret_key})
    )
    return creds


def write_seaweed_identities(path: Path, creds: S3Credentials) -> None:
    """SeaweedFS ``-s3.config`` file: one identity allowed everything."""
    config = {
        "identities": [
            {
                "name": "glimpse",
                "credentials": [{"accessKey": creds.access_key, "secretKey": creds.secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    write_private(path, json.dumps(config, indent=2))
