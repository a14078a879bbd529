"""Search hits carry the cues read from the image and say where the query's words are."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from test_db_captions import add

from services.search_api.hits import hits_for


@pytest.fixture
def conn(postgres: str) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    with psycopg.connect(postgres, row_factory=dict_row) as conn:
        yield conn
        conn.rollback()


def test_a_hit_shows_the_text_in_its_image_its_colours_and_why_it_matched(
    conn: psycopg.Connection[Any],
) -> None:
    page = add(conn, "A photo of a brass plaque.", "The harbour committee met",
               [("white", 0.8), ("black and white", 1.0)])  # fmt: skip

    [hit] = hits_for(conn, [(page, 0.03, 0.2)], query="harbour meeting minutes")

    assert hit.text_in_image == "The harbour committee met"
    assert hit.colours == ["white", "black and white"]
    assert hit.matched_in == ["text in image"]


def test_without_a_query_or_cues_nothing_is_claimed(conn: psycopg.Connection[Any]) -> None:
    cat = add(conn, "A photo of a tabby cat.")

    [hit] = hits_for(conn, [(cat, 0.03, 0.9)])

    assert (hit.text_in_image, hit.colours, hit.matched_in) == (None, [], [])
