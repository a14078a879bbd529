"""Uploading through the API, and the API keys that guard it."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from badfiles import jpeg
from harness import RunningStack
from helpers import admin_key, api, connect, unique_png

from glimpse.db import keys

pytestmark = pytest.mark.integration


def wait_status(stack: RunningStack, status_url: str, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        response = httpx.get(api(stack) + status_url)
        if response.status_code == 200:
            body: dict[str, Any] = response.json()
            return body
        time.sleep(0.2)
    raise AssertionError(f"{status_url} never appeared")


def test_first_up_made_a_private_admin_key(stack: RunningStack) -> None:
    path = stack.settings.home / "credentials" / "api-key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert admin_key(stack).startswith("glk_")


def test_upload_answers_one_item_per_file_in_order(stack: RunningStack) -> None:
    files = [
        ("files", ("sunset.jpg", jpeg(640, 480), "image/jpeg")),
        ("files", ("<script>alert(1)</script>.png", unique_png(777_001), "image/png")),
        ("files", ("notes.jpg", b"just some text\n" * 20, "image/jpeg")),
    ]
    response = httpx.post(f"{api(stack)}/v1/uploads", files=files, data={"prefix": "api-up/"},
                          headers={"Authorization": f"Bearer {admin_key(stack)}"})  # fmt: skip

    assert response.status_code == 202, response.text
    items = response.json()["items"]
    assert [i["filename"] for i in items] == [name for _, (name, _, _) in files]
    assert all(i["status"] == "stored" and i["key"].startswith("api-up/") for i in items)
    outcomes = [wait_status(stack, i["status_url"]) for i in items]
    assert [o["status"] for o in outcomes] == ["accepted", "accepted", "rejected"]
    assert outcomes[2]["reason"] == "unsupported_type"
    assert "<script>" not in items[1]["key"]  # unsafe characters replaced in the key


def test_uploads_need_a_valid_key(stack: RunningStack) -> None:
    files = {"files": ("a.png", unique_png(777_002), "image/png")}
    missing = httpx.post(f"{api(stack)}/v1/uploads", files=files)
    wrong = httpx.post(f"{api(stack)}/v1/uploads", files=files,
                       headers={"Authorization": "Bearer glk_not-a-real-key"})  # fmt: skip

    assert missing.status_code == 401 and wrong.status_code == 401
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.headers["www-authenticate"] == "Bearer"


def test_revoked_key_stops_working_at_once(stack: RunningStack) -> None:
    with connect(stack.settings) as conn:
        key, secret = keys.create(conn, "test: short-lived")
    headers = {"Authorization": f"Bearer {secret}"}
    body = {"filename": "x.jpg", "size_bytes": 10}
    assert httpx.post(f"{api(stack)}/v1/uploads/presign", json=body, headers=headers).is_success

    with connect(stack.settings) as conn:
        assert keys.revoke(conn, key.prefix) == 1

    assert (
        httpx.post(f"{api(stack)}/v1/uploads/presign", json=body, headers=headers).status_code
        == 401
    )


def test_oversized_request_is_refused_from_its_headers(stack: RunningStack) -> None:
    limit = stack.settings.limits.max_bytes
    huge = b"\xff\xd8\xff" + bytes(limit + 2 * 1024 * 1024)
    response = httpx.post(f"{api(stack)}/v1/uploads", files={"files": ("big.jpg", huge)},
                          headers={"Authorization": f"Bearer {admin_key(stack)}"})  # fmt: skip

    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


def test_presigned_put_goes_straight_to_the_bucket_and_is_ingested(stack: RunningStack) -> None:
    data = unique_png(777_003)
    presigned = httpx.post(
        f"{api(stack)}/v1/uploads/presign",
        json={"filename": "direct.png", "size_bytes": len(data), "prefix": "presigned/"},
        headers={"Authorization": f"Bearer {admin_key(stack)}"},
    ).json()

    put = httpx.put(presigned["url"], content=data, headers=presigned["headers"])

    assert put.status_code == 200, put.text
    assert wait_status(stack, presigned["status_url"])["status"] == "accepted"


def test_presign_refuses_a_file_over_the_limit(stack: RunningStack) -> None:
    response = httpx.post(
        f"{api(stack)}/v1/uploads/presign",
        json={"filename": "huge.mov", "size_bytes": stack.settings.limits.max_bytes + 1},
        headers={"Authorization": f"Bearer {admin_key(stack)}"},
    )
    assert response.status_code == 413
