"""Only the S3 port, with its keys, lets anyone at the media: SeaweedFS' filer, volume
and master ports and its gRPC ports refuse a local user who has no secret."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import httpx
import pytest
from harness import RunningStack

from glimpse.stack.seaweed import weed_binary
from glimpse.storage import ObjectStore

pytestmark = pytest.mark.integration


@pytest.fixture
def stored(stack: RunningStack) -> tuple[str, bytes]:
    """An object put through S3, under a prefix ingest ignores."""
    key, body = f".glimpse/probe-{uuid.uuid4().hex}", f"private {uuid.uuid4()}".encode()
    ObjectStore(stack.settings.s3).put(key, body, "application/octet-stream")
    return key, body


def test_the_filer_http_api_wants_a_token(stack: RunningStack, stored: tuple[str, bytes]) -> None:
    key, body = stored
    filer = f"http://127.0.0.1:{stack.settings.stack.media_filer_port}/buckets/media"
    assert httpx.get(f"{filer}/{key}").status_code == 401
    assert httpx.get(f"{filer}/", headers={"Accept": "application/json"}).status_code == 401
    planted = httpx.post(f"{filer}/planted.jpg", files={"file": ("x.jpg", b"\xff\xd8 not ours")})
    assert planted.status_code == 401
    assert httpx.delete(f"{filer}/{key}").status_code == 401

    store = ObjectStore(stack.settings.s3)
    assert store.read(key, len(body)) == body
    assert store.head("planted.jpg") is None


def test_the_volume_server_wants_a_token(stack: RunningStack) -> None:
    volume = f"http://127.0.0.1:{stack.settings.stack.media_volume_port}"
    assert httpx.get(f"{volume}/1,0100000001").status_code == 401
    written = httpx.post(f"{volume}/1,0100000001", files={"file": ("x", b"planted")})
    assert written.status_code == 401


def test_the_master_cannot_be_told_to_delete_the_bucket(
    stack: RunningStack, stored: tuple[str, bytes]
) -> None:
    key, body = stored
    master = f"127.0.0.1:{stack.settings.stack.media_master_port}"
    # plain HTTP is answered with an error; HTTPS without a client certificate not at all
    assert httpx.get(f"http://{master}/col/delete?collection=media").status_code == 400
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"https://{master}/col/delete?collection=media", verify=False)
    store = ObjectStore(stack.settings.s3)
    assert store.read(key, len(body)) == body


def test_grpc_wants_a_client_certificate(
    stack: RunningStack, stored: tuple[str, bytes], tmp_path: Path
) -> None:
    """`weed filer.cat` reads through the filer's gRPC port. A stranger's copy of weed
    (no security.toml in its folder or home) gets nothing; weed started from the
    store's folder, with its certificate, reads the object: the probe is real."""
    key, body = stored
    url = f"http://127.0.0.1:{stack.settings.stack.media_filer_port}/buckets/media/{key}"

    def filer_cat(cwd: Path) -> bytes:
        done = subprocess.run(
            [weed_binary(), "filer.cat", url],
            cwd=cwd, env={"HOME": str(tmp_path)}, capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        return done.stdout

    assert body not in filer_cat(tmp_path)
    assert body in filer_cat(stack.settings.home / "s3-media")
