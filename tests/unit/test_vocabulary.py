"""The library's words for whisper's hotwords, and the repeats a biased decoder makes."""

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
from glimpse.vocabulary import library_words, without_repeats


@pytest.mark.parametrize(
    ("heard", "kept"),
    [
        ("coin, coin, coin, coin", "coin"),
        ("show me the cat cat", "show me the cat"),
        ("a red car a red car a red car", "a red car"),
        ("Dog. dog, DOG!", "Dog!"),
        ("show me the cat", "show me the cat"),
        ("bonbon", "bonbon"),  # a word is not its own repeat
        ("the theory", "the theory"),
    ],
)
def test_a_word_or_phrase_said_again_right_after_itself_is_kept_once(heard: str, kept: str) -> None:
    assert without_repeats(heard) == kept


@pytest.fixture
def conn(postgres: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(postgres, row_factory=dict_row, autocommit=True) as c:
        yield c


def test_library_words_are_those_most_items_mention_without_stop_words(
    conn: psycopg.Connection[Any],
) -> None:
    bucket = f"vocab-{uuid.uuid4().hex[:8]}"
    texts = ["a tabby cat on the sofa", "the cat sleeps", "a cup of espresso", "a tabby kitten"]
    texts += ["zzzunique " + "word" * 3]  # one item only: last
    for i, text in enumerate(texts):
        row = MediaRow(bucket=bucket, key=f"{i}.jpg", status=MediaStatus.ACCEPTED, kind="image")
        media.save(conn, row)
        captions.save(conn, [CaptionRow(row.id, "labels/test", "r", text, [])])

    words = library_words(conn, 1000)

    assert words.index("cat") < words.index("espresso")  # in two items, before one
    assert words.index("tabby") < words.index("sofa")
    assert not {"the", "of", "on"} & set(words)  # Postgres' English stop words
    assert all(len(w) >= 3 and w.isalpha() for w in words)
