"""The page at ``/`` in chromium against a real stack: uploads, search, similar, voice.

Photos are scikit-image's samples re-saved with a random PNG text chunk, so every
upload is new content (never a duplicate of another test's) with the same caption.
Screenshots of every step land in ``tests/artifacts/`` (git-ignored).
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_page import WebPage, unique_png, upload_photos
from harness import RunningStack
from playwright.sync_api import (
    FilePayload,
    Locator,
    Request,
    Route,
    expect,
)

pytestmark = pytest.mark.integration
PROCESSING_MS = 120_000  # upload → ingest → caption → embed on a busy CPU


def media(api_url: str, media_id: str) -> dict[str, Any]:
    response = httpx.get(f"{api_url}/v1/media/{media_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def first_sentence(caption: str) -> str:
    return caption.split(". ", 1)[0].rstrip(".") + "."


def upload_card(web: WebPage, filename: str) -> Locator:
    return web.page.locator("#upload-list li.upload").filter(
        has=web.page.locator(".name", has_text=filename)
    )


def write_photo(folder: Path, name: str) -> Path:
    path = folder / f"{name}.png"
    path.write_bytes(unique_png(name))
    return path


@pytest.fixture(scope="module")
def library(api_url: str, admin_key: str) -> dict[str, str]:
    """coffee, astronaut and rocket, uploaded through the API and searchable: what the
    search tests look for, independent of the upload test's own photos."""
    return upload_photos(api_url, admin_key, ["coffee", "astronaut", "rocket"], "web-test/")


def search(web: WebPage, query: str) -> None:
    web.page.fill("#search-input", query)
    web.page.press("#search-input", "Enter")


def test_page_is_served_with_strict_headers(api_url: str, stack: RunningStack) -> None:
    page = httpx.get(f"{api_url}/")
    script = httpx.get(f"{api_url}/web/app.js")
    again = httpx.get(f"{api_url}/web/app.js", headers={"If-None-Match": script.headers["etag"]})

    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self';" in csp and "unsafe" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-cache" and page.headers["etag"]
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert httpx.get(f"{api_url}/web/style.css").headers["content-type"].startswith("text/css")
    assert again.status_code == 304
    for bad in ["/web/nothing.js", "/web/..%2Froutes_web.py", "/web/.hidden.js"]:
        assert httpx.get(api_url + bad).status_code == 404, bad
    config = httpx.get(f"{api_url}/v1/config").json()
    assert config["max_upload_bytes"] == stack.settings.limits.max_bytes
    assert config["voice"]["max_seconds"] > 0 and config["voice"]["max_bytes"] > 0


def test_a_link_with_another_key_asks_before_replacing_the_saved_one(web: WebPage) -> None:
    web.open()
    web.page.goto(f"{web.api_url}/#key=glk_someone-elses-key")
    web.page.reload()  # a fragment change alone does not reload the page
    web.page.wait_for_selector("body[data-ready=true]")

    assert any("different API key" in d for d in web.dialogs)  # asked, and dismissed
    assert web.page.evaluate("localStorage.getItem('glimpse.apiKey')") == web.admin_key
    assert "key=" not in web.page.url


def test_uploaded_photos_show_their_captions(web: WebPage, tmp_path: Path) -> None:
    web.open()
    assert "key=" not in web.page.url  # taken from the fragment, then dropped
    assert web.page.evaluate("localStorage.getItem('glimpse.apiKey')") == web.admin_key
    photos = [write_photo(tmp_path, "coffee"), write_photo(tmp_path, "astronaut")]

    web.page.set_input_files("#file-input", [str(p) for p in photos])

    expect(web.page.locator("#upload-list li.upload")).to_have_count(2)
    for path in photos:
        preview = upload_card(web, path.name).locator(".thumb img")
        assert (preview.get_attribute("src") or "").startswith("blob:")
    web.shot("uploading")
    for path in photos:
        card = upload_card(web, path.name)
        expect(card).to_have_attribute("data-state", "searchable", timeout=PROCESSING_MS)
        stored = media(web.api_url, card.get_attribute("data-media-id") or "")
        assert stored["caption"]
        expect(card.locator(".caption")).to_have_text(first_sentence(stored["caption"]))
    web.shot("captions")

    # the same bytes again: the page says which file it duplicates
    web.page.set_input_files("#file-input", str(photos[0]))
    again = web.page.locator("#upload-list li.upload").first
    expect(again).to_have_attribute("data-state", "duplicate", timeout=PROCESSING_MS)
    expect(again.locator(".upload-state")).to_contain_text(
        "Already in your library as “coffee.png”"
    )
    web.shot("duplicate")
    assert web.dialogs == []


def test_typed_query_finds_the_coffee_photo_first(web: WebPage, library: dict[str, str]) -> None:
    web.open()

    search(web, "a cup of coffee")

    cards = web.page.locator("#results li.card")
    expect(web.page.locator("#search-status")).to_contain_text("for “a cup of coffee”")
    expect(cards.first.locator(".name")).to_have_text("coffee.png")
    expect(cards.first.locator(".score")).to_contain_text("% match")
    first_id = cards.first.get_attribute("data-media-id")
    thumb = cards.first.locator(".thumb img")
    expect(thumb).to_have_attribute("src", f"/v1/media/{first_id}/thumbnail")
    thumb.evaluate("img => img.decode()")  # rejects if the thumbnail did not load
    web.shot("coffee")

    # the "Try:" chips name what this library holds: the coffee photo's label
    web.page.locator("#examples button", has_text="an espresso").click()
    expect(web.page.locator("#search-input")).to_have_value("an espresso")
    expect(cards.first.locator(".name")).to_have_text("coffee.png")

    web.page.set_viewport_size({"width": 390, "height": 844})  # a phone
    search(web, "a cup of coffee")
    expect(cards.first.locator(".name")).to_have_text("coffee.png")
    web.shot("phone")


def test_no_matches_and_errors_are_said_in_words(web: WebPage) -> None:
    """Answers stubbed in the browser: whether a nonsense query finds nothing depends on
    what else the shared stack holds; these are about what the page shows."""

    def nothing(route: Route) -> None:
        query = route.request.url.split("q=", 1)[1].split("&", 1)[0]
        route.fulfill(json={"query": query, "hits": [], "next_cursor": None})

    def broken(route: Route) -> None:
        problem = {"title": "Service unavailable", "status": 503, "detail": "the database is down"}
        route.fulfill(status=503, json=problem, content_type="application/problem+json")

    web.open()
    web.page.route("**/v1/search?*", nothing)
    search(web, "zqxj")
    expect(web.page.locator("#search-status")).to_have_text(
        "No matches for “zqxj”. Try other words, or one of the examples."
    )
    expect(web.page.locator("#results li")).to_have_count(0)
    web.shot("no-matches")

    web.page.unroute("**/v1/search?*")
    web.page.route("**/v1/search?*", broken)
    search(web, "a cat")
    expect(web.page.locator("#search-status")).to_have_text("Search failed: the database is down")
    web.shot("error")


def test_weak_matches_are_shown_apart(web: WebPage) -> None:
    """A stubbed answer with one match and one weak match: the guess must not look like
    an answer (dashed card, "weak match", counted apart)."""

    def hit(name: str, similarity: float, weak: bool) -> dict[str, object]:
        return {
            "id": str(uuid.uuid4()),
            "score": 0.03,
            "similarity": similarity,
            "weak": weak,
            "standout": 4.0 if not weak else 1.6,
            "key": f"photos/{name}.jpg",
            "kind": "image",
            "mime": "image/jpeg",
            "width": 10,
            "height": 10,
            "duration_s": None,
            "captured_at": None,
            "caption": f"A photo of a {name}.",
            "labels": [[name, 0.9]],
            "transcript": None,
            "thumbnail_url": None,
        }

    def answer(route: Route) -> None:
        hits = [hit("lighthouse", 0.61, False), hit("tower", 0.22, True)]
        route.fulfill(json={"query": "lighthouse", "hits": hits, "next_cursor": None})

    web.open()
    web.page.route("**/v1/search?*", answer)
    search(web, "lighthouse")

    cards = web.page.locator("#results li.card")
    expect(web.page.locator("#search-status")).to_have_text("2 results for “lighthouse” (1 weak).")
    expect(cards.nth(0)).not_to_have_class(re.compile(r"\bweak\b"))
    expect(cards.nth(0).locator(".score")).to_have_text("61% match")
    expect(cards.nth(1)).to_have_class(re.compile(r"\bweak\b"))
    expect(cards.nth(1).locator(".score")).to_have_text("22% weak match")
    assert cards.nth(1).evaluate("c => getComputedStyle(c).borderStyle") == "dashed"
    web.shot("weak-match")


def test_more_like_this_shows_similar_images(web: WebPage, library: dict[str, str]) -> None:
    web.open()
    search(web, "a cup of coffee")
    first = web.page.locator("#results li.card").first
    expect(first.locator(".name")).to_have_text("coffee.png")
    first_id = first.get_attribute("data-media-id")

    first.get_by_role("button", name="More like coffee.png").click()

    section = web.page.locator("#similar-section")
    expect(section).to_be_visible()
    expect(section.locator("h2")).to_have_text("Looks like coffee.png")
    expect(section.locator("#similar li.card").first).to_be_visible()
    expect(section.locator("#similar-status")).to_contain_text("like coffee.png")
    shown = section.locator("#similar li.card").evaluate_all(
        "cards => cards.map(c => c.dataset.mediaId)"
    )
    assert shown and first_id not in shown  # never the photo itself
    web.shot("similar")


def test_bad_files_show_the_reason_and_never_run_as_markup(web: WebPage) -> None:
    hostile = "<script>alert(1)</script><img src=x onerror=alert(2)>.jpg"
    web.open()

    files: list[FilePayload] = [
        {"name": "bad.jpg", "mimeType": "image/jpeg", "buffer": b"just some text\n" * 20},
        {"name": hostile, "mimeType": "image/jpeg", "buffer": b"<script>alert(3)</script>"},
    ]
    web.page.set_input_files("#file-input", files)

    for name in ["bad.jpg", hostile]:
        card = web.page.locator("#upload-list li.upload").filter(
            has=web.page.get_by_text(name, exact=True)
        )
        expect(card).to_have_attribute("data-state", "rejected", timeout=PROCESSING_MS)
        stored = media(web.api_url, card.get_attribute("data-media-id") or "")
        assert stored["status"] == "rejected" and stored["reason_detail"]
        expect(card.locator(".upload-state")).to_have_text(f"Not added: {stored['reason_detail']}")
        expect(card.locator(".name")).to_have_text(name)  # literally, as text
    web.shot("rejected")
    assert web.dialogs == []
    assert web.page.evaluate("document.scripts.length") == 1  # only app.js
    assert web.page.locator("#upload-list script, #upload-list img[src=x]").count() == 0


def test_too_big_file_is_refused_before_upload(web: WebPage, tmp_path: Path) -> None:
    limit = httpx.get(f"{web.api_url}/v1/config").json()["max_upload_bytes"]
    huge = tmp_path / "huge.jpg"
    with huge.open("wb") as out:
        out.truncate(limit + 1)
    uploads: list[str] = []

    def watch(request: Request) -> None:
        if "/v1/uploads" in request.url:
            uploads.append(request.url)

    web.page.on("request", watch)
    web.open()

    web.page.set_input_files("#file-input", str(huge))

    card = upload_card(web, "huge.jpg")
    expect(card).to_have_attribute("data-state", "too-big")
    expect(card.locator(".upload-state")).to_have_text(
        f"Too big to upload: {limit + 1:,} bytes; the limit is {limit:,} bytes (12 MB)."
    )
    web.shot("too-big")
    assert uploads == []


def test_upload_without_key_asks_for_one(web: WebPage, tmp_path: Path) -> None:
    web.open(with_key=False)
    path = write_photo(tmp_path, "rocket")

    web.page.set_input_files("#file-input", str(path))

    panel = web.page.locator("#key-panel")
    expect(panel).to_be_visible()
    expect(panel).to_contain_text(
        "Uploads need an API key: open the link glimpse up printed, "
        "or paste a key from glimpse keys create."
    )
    expect(panel.locator("code")).to_have_text(["glimpse up", "glimpse keys create"])
    expect(web.page.locator("#key-input")).to_be_focused()
    card = upload_card(web, "rocket.png")
    expect(card).to_have_attribute("data-state", "needs-key")
    web.shot("key-prompt")

    web.page.fill("#key-input", web.admin_key)
    web.page.press("#key-input", "Enter")

    expect(panel).to_be_hidden()
    expect(card).to_have_attribute("data-state", "searchable", timeout=PROCESSING_MS)
    assert web.page.evaluate("localStorage.getItem('glimpse.apiKey')") == web.admin_key
    web.shot("uploaded-with-key")


def test_spoken_query_finds_the_coffee_photo(web: WebPage, library: dict[str, str]) -> None:
    """Needs POST /v1/search/voice (the lead's voice endpoint)."""
    web.open()
    status = web.page.locator("#voice-status")

    web.page.click("#record-button")
    expect(status).to_contain_text("Recording…")
    expect(status).to_contain_text("(press again to stop)")
    expect(web.page.locator("#record-button")).to_have_attribute("aria-pressed", "true")
    web.page.wait_for_timeout(3_000)
    web.shot("recording")
    web.page.click("#record-button")

    expect(status).to_contain_text("Transcribing…")
    said = web.page.locator("#you-said")
    expect(said).to_contain_text("You said:", timeout=PROCESSING_MS)
    web.shot("transcribed")
    assert "coffee" in (said.text_content() or "").lower(), said.text_content()
    expect(web.page.locator("#results li.card").first.locator(".name")).to_have_text("coffee.png")
