"""Log format shared by every glimpse process (one line per event, to stderr)."""

from __future__ import annotations

import logging


def configure_logging(level: str, name: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format=f"%(asctime)s %(levelname)-7s {name} %(name)s: %(message)s",
    )
    # kafka-python logs every reconnect attempt at WARNING/ERROR; the runtime says it once.
    logging.getLogger("kafka").setLevel(max(logging.getLevelName(level.upper()), logging.ERROR))
