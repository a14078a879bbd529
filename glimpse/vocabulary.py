"""The words a library is about, so whisper hears a spoken query in them.

A voice query is a few words with no context: whisper base heard "show me the cut" for
"show me the cat". Its ``hotwords`` bias decoding toward given words; these come from
the library itself: the words most items' captions, text read in images and transcripts
contain (document frequency over a fixed sample of rows, English stop words left out by
Postgres' own dictionary), read again every few minutes as the library changes.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

log = logging.getLogger(__name__)

# ts_stat takes a query's text: the sample size is a literal, never user input.
_WORDS = """
SELECT word FROM ts_stat($$
    (SELECT to_tsvector('simple', left(c.text || ' ' || coalesce(c.ocr_text, ''), 600))
     FROM captions c JOIN media m ON m.id = c.media_id AND m.status = 'accepted'
     ORDER BY c.media_id LIMIT 2000)
    UNION ALL
    (SELECT to_tsvector('simple', left(t.text, 600))
     FROM transcripts t JOIN media m ON m.id = t.media_id AND m.status = 'accepted'
     ORDER BY t.media_id LIMIT 2000)
$$)
WHERE word ~ '^[a-z]{3,}$' AND numnode(plainto_tsquery('english', word)) > 0
ORDER BY ndoc DESC, word
LIMIT %(limit)s
"""


def library_words(conn: psycopg.Connection[Any], limit: int) -> list[str]:
    """Up to ``limit`` words, those in the most items first."""
    return [row["word"] for row in conn.execute(_WORDS, {"limit": limit}).fetchall()]


class LibraryVocabulary:
    """``hotwords()`` for whisper, read from Postgres at most every ``refresh_s``; the
    last words read are kept while Postgres is away (a bias, not a dependency)."""

    def __init__(
        self, pool: ConnectionPool[psycopg.Connection[Any]], words: int, refresh_s: float
    ) -> None:
        self._pool = pool
        self._words = words
        self._refresh_s = refresh_s
        self._read_at = float("-inf")
        self._hotwords: str | None = None
        self._lock = threading.Lock()

    def hotwords(self) -> str | None:
        if self._words <= 0:
            return None
        with self._lock:
            if time.monotonic() - self._read_at >= self._refresh_s:
                self._read_at = time.monotonic()
                try:
                    with self._pool.connection() as conn:
                        words = library_words(conn, self._words)
                    self._hotwords = " ".join(words) or None
                except psycopg.Error as exc:
                    log.warning("could not read the library's words (%r); keeping the last", exc)
            return self._hotwords


_REPEAT = re.compile(r"\b(\w+(?:\W+\w+){0,2}?)(?:\W+\1\b)+", re.IGNORECASE)


def without_repeats(text: str) -> str:
    """A biased decoder can loop ("coin, coin, coin, coin"): a word or a phrase of up to
    three words said again right after itself is kept once."""
    return _REPEAT.sub(r"\1", text)
