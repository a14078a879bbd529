"""The page's drawing pad in chromium against a real stack: strokes drawn with a mouse, a
pen and a finger are searched through ``POST /v1/search/image`` and the hits the API
answered are the results shown.

The mouse is Playwright's; pen and touch come through the DevTools protocol's input
events (``Input.dispatchMouseEvent`` with ``pointerType: pen``, ``Input.dispatchTouchEvent``),
which reach the page as real pointer events of those types.
"""

from __future__ import annotations

import io
import math
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_page import WebPage, upload_photos
from harness import RunningStack
from PIL import Image, ImageDraw
from playwright.sync_api import Browser, CDPSession, Page, Response, expect

from glimpse.stack.supervisor import service_env

pytestmark = pytest.mark.integration
SHEET = 320  # the pad's own pixels (index.html)
SEARCH_MS = 60_000  # the API's answer on a busy CPU


def circle(center: float = SHEET / 2, radius: float = SHEET / 3, steps: int = 48) -> list[Any]:
    """Points on a circle, in the pad's pixels, closed."""
    return [
        (center + radius * math.cos(2 * math.pi * i / steps),
         center + radius * math.sin(2 * math.pi * i / steps))
        for i in range(steps + 1)
    ]  # fmt: skip


def on_page(page: Page, points: list[Any]) -> list[tuple[float, float]]:
    """Pad pixels → page coordinates (the pad is drawn smaller or larger on screen)."""
    box = page.locator("#draw-pad").bounding_box()
    assert box is not None
    return [
        (box["x"] + x * box["width"] / SHEET, box["y"] + y * box["height"] / SHEET)
        for x, y in points
    ]


def open_pad(web: WebPage) -> None:
    web.open()
    web.page.get_by_text("Or draw it").click()
    pad = web.page.locator("#draw-pad")
    expect(pad).to_be_visible()
    pad.scroll_into_view_if_needed()  # touch and pen land where the viewport shows it
    # record the pointer types the pad sees: proof that pen and touch really drew
    web.page.evaluate(
        """() => { window.seenPointers = [];
        document.getElementById('draw-pad').addEventListener('pointerdown',
          (e) => window.seenPointers.push(e.pointerType)); }"""
    )


def draw_with_mouse(page: Page, points: list[Any]) -> None:
    path = on_page(page, points)
    page.mouse.move(*path[0])
    page.mouse.down()
    for x, y in path[1:]:
        page.mouse.move(x, y, steps=2)
    page.mouse.up()


def draw_with_pen(cdp: CDPSession, page: Page, points: list[Any]) -> None:
    path = on_page(page, points)
    pen = {"pointerType": "pen", "button": "left", "force": 0.5}
    cdp.send("Input.dispatchMouseEvent", {"type": "mousePressed", "x": path[0][0],
             "y": path[0][1], "clickCount": 1, "buttons": 1, **pen})  # fmt: skip
    for x, y in path[1:]:
        cdp.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y,
                 "buttons": 1, **pen})  # fmt: skip
    cdp.send("Input.dispatchMouseEvent", {"type": "mouseReleased", "x": path[-1][0],
             "y": path[-1][1], "clickCount": 1, "buttons": 0, **pen})  # fmt: skip


def finger(point: tuple[float, float]) -> dict[str, float]:
    return {"x": point[0], "y": point[1]}


def draw_with_finger(cdp: CDPSession, page: Page, points: list[Any]) -> None:
    path = on_page(page, points)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [finger(path[0])]})
    for point in path[1:]:
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [finger(point)]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def searched_drawing(response: Response) -> Image.Image:
    """The picture the page sent, decoded."""
    request = response.request
    assert request.method == "POST"
    assert request.headers["content-type"] == "image/png"
    body = request.post_data_buffer
    assert body is not None and body.startswith(b"\x89PNG\r\n\x1a\n")
    return Image.open(io.BytesIO(body)).convert("RGB")


def is_ink(pixel: Any) -> bool:
    return max(pixel) < 80


def assert_shows_the_answer(web: WebPage, response: Response) -> None:
    """The results list holds exactly the API's hits, in its order."""
    assert response.status == 200, response.text()
    hits = response.json()["hits"]
    assert hits, "the library has images: a drawing always has nearest ones"
    cards = web.page.locator("#results li.card")
    expect(cards).to_have_count(len(hits))
    shown = cards.evaluate_all("cards => cards.map(c => c.dataset.mediaId)")
    assert shown == [hit["id"] for hit in hits]
    expect(cards.first.locator(".why")).to_have_text("Looks like your drawing")
    expect(cards.first.locator(".score")).to_have_text(
        f"{round(hits[0]['similarity'] * 100)}% match"
    )
    expect(web.page.locator("#search-status")).to_contain_text("for “your drawing”")


@pytest.fixture(scope="module")
def library(api_url: str, admin_key: str) -> dict[str, str]:
    """Photos for drawings to find (others than the search tests' coffee, astronaut and
    rocket, whose judgement would change with copies of them in the library)."""
    return upload_photos(api_url, admin_key, ["cat", "horse", "motorcycle"], "draw-test/")


@pytest.fixture
def touch_web(
    browser: Browser, api_url: str, admin_key: str, request: pytest.FixtureRequest
) -> Iterator[WebPage]:
    """A tab on a phone-sized touch screen."""
    ctx = browser.new_context(viewport={"width": 412, "height": 915}, has_touch=True)
    ctx.set_default_timeout(15_000)
    try:
        yield WebPage(ctx.new_page(), api_url, admin_key, request.node.name)
    finally:
        ctx.close()


def test_a_mouse_drawing_is_searched_and_its_hits_shown(
    web: WebPage, library: dict[str, str]
) -> None:
    open_pad(web)
    expect(web.page.locator("#draw-label")).to_be_hidden()  # no label set active
    assert web.page.locator("output#draw-label").count() == 1

    with web.page.expect_response(lambda r: "/v1/search/image" in r.url, timeout=SEARCH_MS) as got:
        draw_with_mouse(web.page, circle())  # the search follows the stroke by itself

    drawing = searched_drawing(got.value)
    assert drawing.size == (SHEET, SHEET)
    assert drawing.getpixel((2, 2)) == (255, 255, 255)  # a white sheet
    assert is_ink(drawing.getpixel((round(SHEET / 2 + SHEET / 3), SHEET // 2)))  # on the ring
    assert drawing.getpixel((SHEET // 2, SHEET // 2)) == (255, 255, 255)  # inside it
    assert_shows_the_answer(web, got.value)
    assert web.page.evaluate("window.seenPointers") == ["mouse"]
    web.shot("mouse-drawing")


def test_pen_and_touch_draw_too(touch_web: WebPage, library: dict[str, str]) -> None:
    web = touch_web
    open_pad(web)
    cdp = web.page.context.new_cdp_session(web.page)
    scroll_before = web.page.evaluate("window.scrollY")

    with web.page.expect_response(lambda r: "/v1/search/image" in r.url, timeout=SEARCH_MS):
        draw_with_pen(cdp, web.page, [(40, 60), (280, 60)])
    with web.page.expect_response(lambda r: "/v1/search/image" in r.url, timeout=SEARCH_MS) as got:
        draw_with_finger(cdp, web.page, [(40 + 10 * i, 120 + 8 * i) for i in range(20)])

    assert web.page.evaluate("window.seenPointers") == ["pen", "touch"]
    assert web.page.evaluate("window.scrollY") == scroll_before  # the finger drew, not scrolled
    drawing = searched_drawing(got.value)  # the second search: both strokes
    assert is_ink(drawing.getpixel((160, 60)))  # the pen's line
    assert is_ink(drawing.getpixel((140, 200)))  # the finger's diagonal
    assert_shows_the_answer(web, got.value)
    web.shot("pen-and-touch")


def test_clear_empties_the_pad_and_an_empty_pad_is_not_searched(
    web: WebPage, library: dict[str, str]
) -> None:
    open_pad(web)
    with web.page.expect_response(lambda r: "/v1/search/image" in r.url, timeout=SEARCH_MS):
        draw_with_mouse(web.page, circle(radius=40))
    searches: list[str] = []
    web.page.on("request", lambda r: searches.append(r.url) if "/search/image" in r.url else None)

    web.page.click("#draw-clear")
    web.page.click("#draw-search")

    expect(web.page.locator("#draw-status")).to_have_text("Draw something first.")
    blank = web.page.evaluate(
        """() => { const c = document.getElementById('draw-pad');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        return d.every((v) => v === 255); }"""
    )
    assert blank, "Clear leaves a white sheet"
    assert searches == []
    web.shot("cleared")


def shape_examples(folder: Path) -> Path:
    """Drawn rings and squares, three of each, as a user would give examples."""
    for i, (size, width) in enumerate([(90, 8), (120, 10), (70, 12)]):
        for label, draw in (("circle", "ellipse"), ("square", "rectangle")):
            sheet = Image.new("RGB", (SHEET, SHEET), "white")
            box = (SHEET / 2 - size, SHEET / 2 - size + 10 * i, SHEET / 2 + size,
                   SHEET / 2 + size + 10 * i)  # fmt: skip
            getattr(ImageDraw.Draw(sheet), draw)(box, outline="black", width=width)
            (folder / label).mkdir(parents=True, exist_ok=True)
            sheet.save(folder / label / f"{i}.png")
    return folder


def glimpse_cli(stack: RunningStack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **service_env(stack.settings), "GLIMPSE_MODELS__TORCH_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "glimpse.cli", *args], env=env,
                          capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_an_active_label_set_names_the_drawing(
    web: WebPage, library: dict[str, str], stack: RunningStack, tmp_path: Path
) -> None:
    name = f"shapes-{uuid.uuid4().hex[:6]}"
    glimpse_cli(stack, "labels", "train", name, "--examples", str(shape_examples(tmp_path)))
    glimpse_cli(stack, "labels", "activate", name)
    try:
        open_pad(web)
        with web.page.expect_response(lambda r: "/predict" in r.url, timeout=SEARCH_MS) as got:
            draw_with_mouse(web.page, circle())

        answer = got.value.json()
        assert got.value.status == 200 and answer["label_set"] == name, answer
        [top] = answer["labels"]
        shown = f"{top['label']}, {round(top['confidence'] * 100)} %"
        expect(web.page.locator("#draw-label")).to_have_text(
            shown.replace(",", "?,", 1) + " (unsure)" if answer["unsure"] else shown
        )
        assert top["label"] == "circle"  # a ring drawn like the examples' rings
        web.shot("drawing-named-by-a-label-set")
        web.page.click("#draw-clear")
        expect(web.page.locator("#draw-label")).to_be_hidden()
    finally:
        glimpse_cli(stack, "labels", "delete", name, "--yes")
