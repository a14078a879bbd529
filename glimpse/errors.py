"""Telling infrastructure trouble (retry forever) from an item's own trouble (retry a few
times, then dead-letter with a reason).

The rule: an error is *transient* when every item would fail the same way right now
(a server is down, restarting, overloaded, or says so), so the worker must wait and
commit nothing past it. It is an *item* error when this input is the likely cause:
retrying it alone a few times is cheap, and then it goes to the DLQ so its partition
keeps moving. Unknown errors are item errors: a stalled worker is worse than one
dead letter too many, which ``glimpse reconcile`` or a re-upload can redo.
"""

from __future__ import annotations

import http.client
import random
from enum import StrEnum

import psycopg
import psycopg_pool
from botocore.exceptions import ClientError, HTTPClientError, IncompleteReadError
from botocore.exceptions import ConnectionError as BotocoreConnectionError
from kafka import errors as kafka_errors
from urllib3.exceptions import HTTPError as Urllib3HTTPError

#: ``DeadLetter.reason`` and ``media.reason`` for a failure with no more specific name.
PROCESSING_ERROR = "processing_error"


class ErrorKind(StrEnum):
    TRANSIENT = "transient"  # infrastructure: back off and retry forever
    ITEM = "item"  # this item's fault: bounded retry, then the DLQ


class TransientError(Exception):
    """Infrastructure trouble a handler detected itself: retry later, never commit past it."""


class ItemError(Exception):
    """This item cannot be processed now, for a reason worth naming: it is retried
    ``max_attempts`` times, then dead-lettered with ``reason`` (machine-readable)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class WorkerCrashed(ItemError):
    """The process died (OOM, SIGKILL, segfault) every time it worked on this item."""

    def __init__(self, crashes: int) -> None:
        super().__init__(
            "crashed_worker", f"the worker died {crashes} times while processing this item"
        )


_TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    TransientError,
    psycopg.InterfaceError,  # the connection is closed or broken
    psycopg_pool.PoolTimeout,
    # botocore's transport errors: connect/read timeouts, connection closed or reset,
    # and a body cut off mid-stream (ResponseStreamingError) during a server restart.
    BotocoreConnectionError,  # endpoint unreachable, connect timeout
    HTTPClientError,
    IncompleteReadError,
    Urllib3HTTPError,
    http.client.HTTPException,  # IncompleteRead, RemoteDisconnected
    ConnectionError,
    TimeoutError,
)

# --- Postgres: by SQLSTATE -------------------------------------------------------------
# Codes and classes that say "the server cannot serve anyone right now".
_TRANSIENT_SQLSTATES = frozenset(
    {
        "57P01",  # admin_shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now (starting up, recovering)
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "25006",  # read_only_sql_transaction: a replica, or a primary being demoted
        "55P03",  # lock_not_available
    }
)
_TRANSIENT_SQLSTATE_CLASSES = frozenset(
    {
        "08",  # connection exception
        "53",  # insufficient resources: disk full, out of memory, too many connections
        "58",  # system error: I/O error below Postgres
    }
)
# Everything else with a SQLSTATE is about the statement, so about the item: data (22),
# integrity (23), syntax/undefined (42), program limit (54, e.g. a tsvector too long),
# and query_canceled (57014, a statement_timeout the item's size provoked).


def _postgres_kind(exc: psycopg.Error) -> ErrorKind:
    state = exc.sqlstate
    if state is None:
        # No answer from the server at all: the connection failed or was lost.
        return ErrorKind.TRANSIENT if isinstance(exc, psycopg.OperationalError) else ErrorKind.ITEM
    if state in _TRANSIENT_SQLSTATES or state[:2] in _TRANSIENT_SQLSTATE_CLASSES:
        return ErrorKind.TRANSIENT
    return ErrorKind.ITEM


# --- Kafka: the client's ``retriable`` flag plus these ------------------------------------
# Not marked retriable by kafka-python, but they mean the broker or the group is in
# flux (a restart, a rebalance), not that a record is bad.
_TRANSIENT_KAFKA_TYPES: tuple[type[kafka_errors.KafkaError], ...] = (
    kafka_errors.BrokerNotAvailableError,
    kafka_errors.RebalanceInProgressError,
    kafka_errors.CommitFailedError,
    kafka_errors.IllegalGenerationError,
    kafka_errors.UnknownMemberIdError,
    kafka_errors.UnknownError,  # the broker's own unexpected error (e.g. its storage)
)

# --- S3 answers -------------------------------------------------------------------------
# Answers that mean "the server is unwell or not ready", not "your request is wrong".
# NoSuchBucket: the bucket is configuration, never an item's choice, and SeaweedFS
# answers it for a moment after a restart while it reloads buckets from the filer; if
# the bucket is really gone every item would fail, so stalling (not ready, retrying,
# logged) is the right response either way. The same holds for credential answers.
_TRANSIENT_S3_CODES = frozenset(
    {
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "NoSuchBucket",
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
    }
)
_TRANSIENT_HTTP_STATUSES = frozenset({403, 408, 429})


def _s3_kind(exc: ClientError) -> ErrorKind:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    if code.isdigit():  # HEAD answers carry only the status as the code
        status = status or int(code)
    if code in _TRANSIENT_S3_CODES or status >= 500 or status in _TRANSIENT_HTTP_STATUSES:
        return ErrorKind.TRANSIENT
    return ErrorKind.ITEM


def classify(exc: BaseException) -> ErrorKind:
    """Whether ``exc`` is infrastructure trouble or this item's."""
    if isinstance(exc, ItemError):
        return ErrorKind.ITEM
    if isinstance(exc, psycopg.Error) and not isinstance(exc, psycopg.InterfaceError):
        return _postgres_kind(exc)
    if isinstance(exc, kafka_errors.KafkaError):
        transient = exc.retriable or isinstance(exc, _TRANSIENT_KAFKA_TYPES)
        return ErrorKind.TRANSIENT if transient else ErrorKind.ITEM
    if isinstance(exc, ClientError):
        return _s3_kind(exc)
    if isinstance(exc, _TRANSIENT_TYPES):
        return ErrorKind.TRANSIENT
    return ErrorKind.ITEM


def is_transient(exc: BaseException) -> bool:
    return classify(exc) is ErrorKind.TRANSIENT


def failure_reason(exc: BaseException) -> str:
    """The machine-readable reason a dead-lettered item is recorded with."""
    return exc.reason if isinstance(exc, ItemError) else PROCESSING_ERROR


def backoff_delay(attempt: int, initial_s: float, max_s: float) -> float:
    """Capped exponential backoff with jitter; ``attempt`` counts from 1."""
    ceiling: float = min(max_s, initial_s * 2.0 ** (attempt - 1))
    return ceiling * random.uniform(0.5, 1.0)
