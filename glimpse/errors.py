"""Telling infrastructure trouble (retry forever) from bad input (record, dead-letter)."""

from __future__ import annotations

import random

import psycopg
import psycopg_pool
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from kafka.errors import KafkaError
from urllib3.exceptions import HTTPError as Urllib3HTTPError


class TransientError(Exception):
    """Infrastructure trouble a handler detected itself: retry later, never commit past it."""


_TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    TransientError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    psycopg_pool.PoolTimeout,
    EndpointConnectionError,
    ConnectionClosedError,
    ConnectTimeoutError,
    ReadTimeoutError,
    Urllib3HTTPError,
    KafkaError,
    ConnectionError,
    TimeoutError,
)

# S3 answers that mean "the server is unwell", not "your request is wrong".
_TRANSIENT_S3_CODES = frozenset(
    {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "503", "500", "502"}
)


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, _TRANSIENT_TYPES):
        return True
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return code in _TRANSIENT_S3_CODES or int(status) >= 500
    return False


def backoff_delay(attempt: int, initial_s: float, max_s: float) -> float:
    """Capped exponential backoff with jitter; ``attempt`` counts from 1."""
    ceiling: float = min(max_s, initial_s * 2.0 ** (attempt - 1))
    return ceiling * random.uniform(0.5, 1.0)
