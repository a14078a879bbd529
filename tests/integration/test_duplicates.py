"""Duplicates outlive their original: deleting, moving or overwriting it promotes one."""

from __future__ import annotations

import threading
import time

import pytest
from harness import RunningStack
from helpers import connect, store_of, unique_png, wait_for_rows, wait_searchable

from glimpse.db import media
from glimpse.db.media import MediaRow, MediaStatus, media_id

pytestmark = pytest.mark.integration


def is_(status: str) -> object:
    return lambda row: row["status"] == status


def test_deleting_the_original_promotes_the_oldest_duplicate(stack: RunningStack) -> None:
    s = stack.settings
    store = store_of(s)
    data = unique_png(70_001)
    store.put("promote/a.png", data, "image/png")
    wait_for_rows(s, ["promote/a.png"], until=is_("accepted"))
    for copy in ("promote/b.png", "promote/c.png"):  # b is recorded first: the oldest
        store.put(copy, data, "image/png")
        wait_for_rows(s, [copy], until=is_("duplicate"))

    store.delete("promote/a.png")

    rows = wait_for_rows(s, ["promote/b.png"], until=is_("accepted"))
    wait_searchable(stack, ["promote/b.png"])  # captioned and embedded like a fresh accept
    c = wait_for_rows(s, ["promote/c.png"])["promote/c.png"]
    assert (c["status"], c["duplicate_of"]) == ("duplicate", rows["promote/b.png"]["id"])
    assert store.read(rows["promote/b.png"]["thumbnail_key"], 1_000_000) is not None


def test_moving_the_original_with_copy_then_delete_keeps_it_findable(
    stack: RunningStack,
) -> None:
    """``aws s3 mv``: a copy to the new key, then a delete of the old one."""
    s = stack.settings
    store = store_of(s)
    store.put("mv/from.png", unique_png(70_002), "image/png")
    wait_for_rows(s, ["mv/from.png"], until=is_("accepted"))

    store.copy("mv/from.png", "mv/to.png")
    wait_for_rows(s, ["mv/to.png"])  # the copy's event first, in a batch of its own
    store.delete("mv/from.png")

    wait_for_rows(s, ["mv/from.png"], until=is_("deleted"))
    wait_for_rows(s, ["mv/to.png"], until=is_("accepted"))
    wait_searchable(stack, ["mv/to.png"])


def test_moving_with_no_pause_between_copy_and_delete_keeps_it_findable(
    stack: RunningStack,
) -> None:
    s = stack.settings
    store = store_of(s)
    store.put("mv2/from.png", unique_png(70_003), "image/png")
    wait_for_rows(s, ["mv2/from.png"], until=is_("accepted"))

    store.copy("mv2/from.png", "mv2/to.png")
    store.delete("mv2/from.png")

    wait_for_rows(s, ["mv2/from.png"], until=is_("deleted"))
    wait_for_rows(s, ["mv2/to.png"], until=is_("accepted"))
    wait_searchable(stack, ["mv2/to.png"])


def test_overwriting_the_original_with_other_content_promotes_its_duplicate(
    stack: RunningStack,
) -> None:
    s = stack.settings
    store = store_of(s)
    store.put("ow/a.png", unique_png(70_004), "image/png")
    wait_for_rows(s, ["ow/a.png"], until=is_("accepted"))
    store.put("ow/b.png", unique_png(70_004), "image/png")
    wait_for_rows(s, ["ow/b.png"], until=is_("duplicate"))

    store.put("ow/a.png", unique_png(70_005), "image/png")

    wait_for_rows(s, ["ow/b.png"], until=is_("accepted"))
    wait_searchable(stack, ["ow/a.png", "ow/b.png"])


def test_a_duplicate_recorded_while_its_original_is_deleted_is_promoted(
    stack: RunningStack,
) -> None:
    """The race of a copy and a delete in one batch: the delete waits for the duplicate
    being recorded (it holds the original FOR SHARE), then promotes it."""
    s, bucket = stack.settings, "race-sql"
    original = MediaRow(bucket=bucket, key="a", status=MediaStatus.ACCEPTED, sha256="race-1")
    with connect(s) as conn:
        media.save(conn, original)
    copy = MediaRow(bucket=bucket, key="b", status=MediaStatus.DUPLICATE, sha256="race-1")
    promoted: list[object] = []
    with connect(s) as ingesting_copy, connect(s) as deleting:
        with ingesting_copy.transaction():
            copy.duplicate_of = media.find_original(ingesting_copy, "race-1", exclude=copy.id)
            assert copy.duplicate_of == original.id

            def delete_original() -> None:
                with deleting.transaction():
                    media.mark_deleted(deleting, bucket, "a")
                    promoted.append(media.promote_duplicate(deleting, "race-1"))

            deleter = threading.Thread(target=delete_original)
            deleter.start()
            time.sleep(0.5)
            assert deleter.is_alive()  # waiting for the copy's transaction
            media.save(ingesting_copy, copy)
        deleter.join(10)
    assert promoted and promoted[0] is not None
    assert promoted[0]["id"] == media_id(bucket, "b")  # type: ignore[index]
