"""Requests an attacker would send, without a key, to a running API: each gets a clear
answer, costs the server little, and leaves it answering everyone else."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator

import httpx
import numpy as np
import psutil
import pytest
from harness import RunningStack
from helpers import admin_key, api, connect, store_of, unique_png, wait_for_rows
from PIL import Image

from glimpse.config import Settings

pytestmark = pytest.mark.integration
CHUNK = b"x" * 65536


def raw_exchange(stack: RunningStack, head: str, first_chunks: int = 1) -> bytes:
    """Send a chunked request's head and a few chunks, never the end, then read the
    answer: the server must decide without the rest of the body."""
    host, port = stack.settings.api.host, stack.settings.api.port
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(head.encode() + b"\r\n")
        for _ in range(first_chunks):
            sock.sendall(b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK))
        answer = b""
        while b"\r\n\r\n" not in answer:
            received = sock.recv(4096)
            if not received:
                break
            answer += received
    return answer


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def head(method: str, path: str, stack: RunningStack, *headers: str) -> str:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {stack.settings.api.host}"]
    lines += ["Transfer-Encoding: chunked", *headers]
    return "\r\n".join(lines) + "\r\n"


def endless(total_chunks: int) -> Iterator[bytes]:
    for _ in range(total_chunks):
        yield CHUNK


def test_a_chunked_voice_body_is_cut_off_at_the_limit(stack: RunningStack) -> None:
    limit = stack.settings.voice.max_bytes
    chunks = limit // len(CHUNK) + 8  # well past the limit, declared nowhere
    response = httpx.post(
        f"{api(stack)}/v1/search/voice",
        content=endless(chunks),
        headers={"Content-Type": "audio/wav"},
        timeout=30,
    )
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]
    assert httpx.get(f"{api(stack)}/healthz").status_code == 200


def test_a_chunked_upload_past_the_limit_is_refused_with_a_key(stack: RunningStack) -> None:
    settings = stack.settings
    auth = f"Authorization: Bearer {admin_key(stack)}"
    # small JSON routes have small limits: 2 chunks (128 KiB) is past presign's 16 KiB
    presign = raw_exchange(stack, head("POST", "/v1/uploads/presign", stack, auth), 2)
    assert status_of(presign) == 413
    assert settings.api.max_presign_body_bytes < 2 * len(CHUNK)
    # and an upload body is cut at one file's limit even when nothing declares its size
    start = b'--b0undary\r\nContent-Disposition: form-data; name="files"; filename="a.jpg"\r\n\r\n'
    pieces = [start, *endless((settings.limits.max_bytes + 2 * 1024 * 1024) // len(CHUNK) + 2)]
    response = httpx.post(
        f"{api(stack)}/v1/uploads",
        content=iter(pieces),
        headers={
            "Authorization": f"Bearer {admin_key(stack)}",
            "Content-Type": "multipart/form-data; boundary=b0undary",
        },
        timeout=120,
    )
    assert response.status_code == 413


@pytest.mark.parametrize("path", ["/v1/uploads", "/v1/uploads/presign"])
def test_no_key_is_refused_before_the_body_is_read(stack: RunningStack, path: str) -> None:
    # one 64 KiB chunk sent of a body that never ends: the 401 comes without the rest
    answer = raw_exchange(stack, head("POST", path, stack, "Content-Type: application/json"))
    assert status_of(answer) == 401


def test_a_huge_png_sent_as_a_voice_query_is_not_decoded(stack: RunningStack) -> None:
    # 10,000 x 10,000 16-bit grey compresses to ~200 KB and would cost ~1 GB decoded
    image = Image.fromarray(np.zeros((10_000, 10_000), dtype=np.uint16))
    out = io.BytesIO()
    image.save(out, "PNG", optimize=False, compress_level=9)
    api_process = psutil.Process(stack.stack.part("search-api").process.pid)
    before = api_process.memory_info().rss

    response = httpx.post(
        f"{api(stack)}/v1/search/voice",
        content=out.getvalue(),
        headers={"Content-Type": "audio/wav"},
        timeout=30,
    )

    assert response.status_code == 415, response.text
    assert "audio" in response.json()["detail"]
    assert api_process.memory_info().rss - before < 100 * 1024 * 1024


def test_a_foreign_host_name_gets_nothing(stack: RunningStack) -> None:
    # DNS rebinding: evil.example resolves to 127.0.0.1, its page reads the library
    response = httpx.get(f"{api(stack)}/v1/media", headers={"Host": "evil.example"})
    assert response.status_code == 400
    assert httpx.get(f"{api(stack)}/v1/media").status_code == 200


def test_another_site_cannot_post_voice_queries_or_uploads(stack: RunningStack) -> None:
    clip = b"RIFF" + bytes(40)
    cross_site = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    voice = httpx.post(
        f"{api(stack)}/v1/search/voice",
        content=clip,
        headers={**cross_site, "Content-Type": "audio/wav"},
    )
    upload = httpx.post(
        f"{api(stack)}/v1/uploads",
        files={"files": ("a.png", unique_png(880_001), "image/png")},
        headers={**cross_site, "Authorization": f"Bearer {admin_key(stack)}"},
    )
    # what a "no-cors" form post can send: a text body, no audio type
    plain = httpx.post(
        f"{api(stack)}/v1/search/voice", content=clip, headers={"Content-Type": "text/plain"}
    )

    assert voice.status_code == 403 and "evil.example" in voice.json()["detail"]
    assert upload.status_code == 403
    assert plain.status_code == 415


def test_presign_signs_what_it_allows(stack: RunningStack) -> None:
    auth = {"Authorization": f"Bearer {admin_key(stack)}"}

    def presign(**body: object) -> httpx.Response:
        wanted = {"filename": "a.png", "size_bytes": 100, **body}
        return httpx.post(f"{api(stack)}/v1/uploads/presign", json=wanted, headers=auth)

    assert presign(prefix="thumbnails").status_code == 400
    assert presign(prefix="queries").status_code == 400
    assert presign(filename="page.html").status_code == 415
    assert presign(content_type="text/html").status_code == 415

    data = unique_png(880_002)
    signed = presign(size_bytes=len(data), prefix="signed/").json()
    bigger = httpx.put(signed["url"], content=data + bytes(5000), headers={
        "Content-Type": "image/png"})  # fmt: skip
    other_type = httpx.put(signed["url"], content=data, headers={
        "Content-Type": "text/html", "Content-Length": str(len(data))})  # fmt: skip
    assert bigger.status_code == 403 and other_type.status_code == 403
    exact = httpx.put(signed["url"], content=data, headers=signed["headers"])
    assert exact.status_code == 200, exact.text


def test_original_is_served_only_while_it_is_the_checked_object(stack: RunningStack) -> None:
    key = "pinned/photo.png"
    store_of(stack.settings).put(key, unique_png(880_003), "image/png")
    row = wait_for_rows(stack.settings, [key], until=lambda r: r["status"] == "accepted")[key]
    url = f"{api(stack)}/v1/media/{row['id']}/original"
    assert httpx.get(url).status_code == 200

    # as if the object were replaced and ingest had not checked the new bytes yet
    with connect(stack.settings) as conn:
        conn.execute("UPDATE media SET etag = 'not-the-checked-one' WHERE id = %(id)s",
                     {"id": row["id"]})  # fmt: skip
    replaced = httpx.get(url)

    assert replaced.status_code == 409
    assert "checked" in replaced.json()["detail"]


def test_voice_searches_are_bounded_per_client_and_in_all(stack: RunningStack) -> None:
    from fastapi.testclient import TestClient

    from glimpse.config import RateLimit
    from services.search_api.app import create_app

    def voice(settings: Settings) -> list[httpx.Response]:
        with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
            return [
                client.post("/v1/search/voice", content=b"", headers={"Content-Type": "audio/wav"})
                for _ in range(3)
            ]

    per_client = stack.settings.model_copy(deep=True)
    per_client.api.voice_rate = RateLimit(per_second=0.01, burst=2)
    nobody_waits = stack.settings.model_copy(deep=True)
    nobody_waits.voice.max_waiting = 0

    limited = voice(per_client)
    full = voice(nobody_waits)

    assert [r.status_code for r in limited] == [422, 422, 429]  # empty clips, then the limit
    assert int(limited[2].headers["Retry-After"]) > 0
    assert {r.status_code for r in full} == {429}
    assert "waiting" in full[0].json()["detail"]
