"""A hit says which parts of its text hold the query's words."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from test_db_captions import add

from glimpse.explain import CAPTION, COLOURS, TEXT_IN_IMAGE, any_word, matched_parts


@pytest.fixture
def conn(postgres: str) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    with psycopg.connect(postgres, row_factory=dict_row) as conn:
        yield conn
        conn.rollback()


def test_each_part_holding_a_query_word_is_named(conn: psycopg.Connection[Any]) -> None:
    car = add(conn, "A photo of a sports car.", "Harbour Garage", [("red", 0.6)])

    parts = matched_parts(conn, [car], "red car")

    assert parts == {car: [CAPTION, COLOURS]}
    assert matched_parts(conn, [car], "garages by the harbour") == {car: [TEXT_IN_IMAGE]}


def test_a_match_by_meaning_names_no_part(conn: psycopg.Connection[Any]) -> None:
    cat = add(conn, "A photo of a tabby cat.")

    assert matched_parts(conn, [cat], "kitten") == {cat: []}


def test_query_syntax_is_taken_as_words() -> None:
    assert any_word('"red" -car or OR boat') == "red or car or boat"
    assert any_word("!!!") == ""
