"""Reconcile's merge of the bucket listing with media rows: events, order, memory."""

from __future__ import annotations

import multiprocessing
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta

from glimpse.db.media import KnownVersion
from glimpse.events import ObjectAction
from glimpse.reconcile import Uploads, compare
from glimpse.storage import ObjectInfo

BEGAN = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
BEFORE = BEGAN - timedelta(hours=1)


def obj(key: str, etag: str = "e1") -> ObjectInfo:
    return ObjectInfo(key=key, size=10, etag=etag, last_modified=BEFORE)


def row(key: str, etag: str = "e1", updated_at: datetime = BEFORE) -> KnownVersion:
    return KnownVersion(key=key, etag=etag, updated_at=updated_at)


def events(listing: list[ObjectInfo], known: list[KnownVersion]) -> list[tuple[str, str]]:
    found = compare(Uploads(listing), known, bucket="media", listing_began=BEGAN)
    return [(e.action.value, e.key) for e in found]


def test_objects_without_a_row_or_with_another_etag_are_created_again() -> None:
    listing = [obj("a.png"), obj("b.png", etag="new"), obj("c.png")]
    known = [row("b.png", etag="old"), row("c.png")]

    assert events(listing, known) == [("created", "a.png"), ("created", "b.png")]


def test_rows_whose_object_is_gone_are_deleted_wherever_they_fall() -> None:
    listing = [obj("b.png")]
    known = [row("a.png"), row("b.png"), row("c.png"), row("d.png")]

    assert events(listing, known) == [
        ("deleted", "a.png"),
        ("deleted", "c.png"),
        ("deleted", "d.png"),
    ]


def test_a_row_written_after_the_listing_began_is_not_taken_for_a_deleted_object() -> None:
    # uploaded (and ingested) after the listing had passed its key
    known = [row("a.png", updated_at=BEGAN + timedelta(seconds=1)), row("z.png")]

    assert events([], known) == [("deleted", "z.png")]


def test_keys_are_merged_in_s3_byte_order() -> None:
    # UTF-8 byte order: upper case before lower case, "-" (0x2d) before "/" (0x2f),
    # accented letters after ASCII. A locale's order would pair them up wrongly.
    keys = sorted(["B.png", "a-c.png", "a/b.png", "a.png", "z.png", "été.png", "ü/x.png"])
    assert keys == ["B.png", "a-c.png", "a.png", "a/b.png", "z.png", "été.png", "ü/x.png"]

    assert events([obj(k) for k in keys], [row(k) for k in keys]) == []


def test_folder_markers_and_glimpses_own_objects_are_not_uploads() -> None:
    listing = Uploads(
        [
            obj("photos/"),
            obj("photos/a.png"),
            obj("queries/clip.webm"),
            obj("thumbnails/ab/abc.jpg"),
            obj(".glimpse/ready"),
        ]
    )

    assert [o.key for o in listing] == ["photos/a.png"]
    assert listing.count == 1


def _listing(n: int) -> Iterator[ObjectInfo]:
    for i in range(n):
        yield obj(f"photos/{i:09}.jpg", etag=f"{i:032x}")


def _rows(n: int) -> Iterator[KnownVersion]:
    # every other object has its row; every third row's object is gone
    for i in range(0, n, 2):
        yield row(f"photos/{i:09}.jpg", etag=f"{i:032x}")
        if i % 3 == 0:
            yield row(f"photos/{i:09}.jpg.gone")


def _peak_bytes(n: int) -> tuple[int, int]:
    tracemalloc.start()
    try:
        seen = sum(1 for _ in compare(Uploads(_listing(n)), _rows(n), bucket="media",
                                      listing_began=BEGAN))  # fmt: skip
        return seen, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_stays_flat_whatever_the_number_of_keys() -> None:
    # In a fresh process: tracemalloc counts every thread's allocations, and clients
    # that earlier tests left running in this one allocate meanwhile.
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as child:
        small_events, small_peak = child.submit(_peak_bytes, 10_000).result()
        large_events, large_peak = child.submit(_peak_bytes, 100_000).result()

    assert large_events > 9 * small_events  # ten times the work ...
    assert large_peak < small_peak * 1.5 + 16_384  # ... in the same memory
    assert large_peak < 256 * 1024


def test_event_fields_come_from_the_listing() -> None:
    found = list(compare(Uploads([obj("a.png", etag="abc")]), [], bucket="media",
                         listing_began=BEGAN))  # fmt: skip

    assert [(e.action, e.bucket, e.key, e.etag, e.size) for e in found] == [
        (ObjectAction.CREATED, "media", "a.png", "abc", 10)
    ]
