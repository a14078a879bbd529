"""Caption rows keep the cues read from the image, and full-text search reads them as
part of one document with the caption."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from glimpse.db import captions, media
from glimpse.db.captions import CaptionRow
from glimpse.db.media import MediaRow, MediaStatus
from glimpse.search import SearchFilters, keyword


@pytest.fixture
def conn(postgres: str) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    with psycopg.connect(postgres, row_factory=dict_row) as conn:
        yield conn
        conn.rollback()  # nothing a test wrote stays


def add(conn: psycopg.Connection[Any], caption: str, ocr: str = "",
        colours: list[tuple[str, float]] | None = None) -> uuid.UUID:  # fmt: skip
    prefix = f"cues-{uuid.uuid4()}"
    row = MediaRow(bucket="cuetest", key=f"{prefix}/a.jpg", status=MediaStatus.ACCEPTED,
                   kind="image", mime="image/jpeg", sha256=prefix)  # fmt: skip
    media.save(conn, row)
    captions.save(
        conn, [CaptionRow(row.id, "test/cap", "r1", caption, [], ocr, colours or [], "v1")]
    )
    return row.id


def found(conn: psycopg.Connection[Any], text: str) -> list[uuid.UUID]:
    return keyword(conn, text, SearchFilters(prefix="cues-"), 50)


def test_words_read_in_an_image_are_found_in_full_text(
    conn: psycopg.Connection[Any],
) -> None:
    page = add(conn, "A photo of a brass plaque.", "The harbour committee met on Tuesday")
    add(conn, "A photo of a tabby cat.")

    assert found(conn, "harbour committee") == [page]


def test_a_colour_and_a_caption_word_match_together(conn: psycopg.Connection[Any]) -> None:
    red_car = add(conn, "A photo of a sports car.", colours=[("red", 0.6), ("grey", 0.3)])
    add(conn, "A photo of a sports car.", colours=[("blue", 0.7)])
    add(conn, "A photo of a red fox.")

    assert found(conn, "red sports car") == [red_car]


def test_black_and_white_is_searchable(conn: psycopg.Connection[Any]) -> None:
    old = add(conn, "A photo of a man.", colours=[("grey", 0.7), ("black and white", 1.0)])

    assert found(conn, "black and white photo") == [old]


def test_stored_cues_come_back_only_for_the_same_reader(conn: psycopg.Connection[Any]) -> None:
    mid = add(conn, "A photo of a sign.", "BUS STOP", [("green", 0.5)])

    [row] = captions.stored(conn, [mid], "test/cap", "r1", "v1").values()

    assert (row.ocr_text, row.colours, row.cues_version) == ("BUS STOP", [("green", 0.5)], "v1")
    assert captions.stored(conn, [mid], "test/cap", "r1", "v2") == {}
    assert captions.stored(conn, [mid], "test/cap", "r1", None) == {}
