"""The web page in a test: one tab with screenshots, and photos that are never duplicates.

Shared by the browser tests (``tests/browser/``); screenshots of every step land in
``tests/artifacts/`` (git-ignored).
"""

from __future__ import annotations

import io
import re
import uuid
from pathlib import Path

import httpx
from harness import wait_until_searchable
from models_fixtures import photo
from PIL.PngImagePlugin import PngInfo
from playwright.sync_api import Dialog, Page

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


class WebPage:
    """One test's tab: opens the page, records dialogs (a script that ran would open
    one), takes numbered screenshots."""

    def __init__(self, page: Page, api_url: str, admin_key: str, test_name: str) -> None:
        self.page = page
        self.api_url = api_url
        self.admin_key = admin_key
        self.dialogs: list[str] = []
        self._prefix = re.sub(r"[^\w-]+", "_", test_name).strip("_")
        self._shots = 0
        page.on("dialog", self._on_dialog)

    def _on_dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def open(self, *, with_key: bool = True) -> None:
        """The page as ``glimpse up`` prints it (``/#key=…``), or bare."""
        url = f"{self.api_url}/#key={self.admin_key}" if with_key else f"{self.api_url}/"
        self.page.goto(url)
        self.page.wait_for_selector("body[data-ready=true]")

    def shot(self, step: str) -> Path:
        self._shots += 1
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self._prefix}-{self._shots:02d}-{step}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


def unique_png(name: str) -> bytes:
    """A sample photo as PNG with a random text chunk: same pixels (so the same caption),
    different bytes (so never a duplicate of an upload by another test)."""
    info = PngInfo()
    info.add_text("glimpse-test", uuid.uuid4().hex)
    out = io.BytesIO()
    photo(name).save(out, "PNG", pnginfo=info)
    return out.getvalue()


def upload_photos(api_url: str, admin_key: str, names: list[str], prefix: str) -> dict[str, str]:
    """Sample photos (``unique_png``) uploaded through the API, waited for until
    searchable; their media ids by name."""
    files = [("files", (f"{n}.png", unique_png(n), "image/png")) for n in names]
    response = httpx.post(
        f"{api_url}/v1/uploads",
        files=files,
        data={"prefix": prefix},
        headers={"Authorization": f"Bearer {admin_key}"},
        timeout=60,
    )
    assert response.status_code == 202, response.text
    ids = {n: item["id"] for n, item in zip(names, response.json()["items"], strict=True)}
    wait_until_searchable(api_url, list(ids.values()))
    return ids
