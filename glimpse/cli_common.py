"""What the `glimpse` subcommands share: settings of the running stack, a database
connection, a producer, and a clear exit on a user's mistake."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import psycopg
import typer
from kafka import KafkaProducer
from psycopg.rows import dict_row
from rich.console import Console

from glimpse.bus import make_producer
from glimpse.config import Settings
from glimpse.stack.connect import StackNotRunning, resolve

console = Console(stderr=True)


def resolved() -> Settings:
    """Settings with the endpoints of the running stack (or the external servers)."""
    try:
        return resolve(Settings())
    except StackNotRunning as exc:
        fail(str(exc))


def connect(settings: Settings) -> psycopg.Connection[Any]:
    assert settings.database.url
    return psycopg.connect(
        settings.database.url, autocommit=True, row_factory=dict_row, connect_timeout=5
    )


@contextmanager
def producer(settings: Settings) -> Iterator[KafkaProducer]:
    made = make_producer(settings.kafka)
    try:
        yield made
    finally:
        made.close(10)


def fail(message: str) -> NoReturn:
    console.print(f"[red]{message}[/red]")
    raise typer.Exit(1)
