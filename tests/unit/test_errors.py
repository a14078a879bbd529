"""Which errors stall the worker (infrastructure) and which cost one item (bounded retry, DLQ)."""

from __future__ import annotations

import http.client

import psycopg
import psycopg_pool
import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from kafka import errors as kafka_errors
from psycopg import errors as pg
from urllib3.exceptions import IncompleteRead, ProtocolError

from glimpse.errors import (
    PROCESSING_ERROR,
    ErrorKind,
    ItemError,
    TransientError,
    WorkerCrashed,
    classify,
    failure_reason,
)

TRANSIENT, ITEM = ErrorKind.TRANSIENT, ErrorKind.ITEM


def s3_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "GetObject",
    )


def postgres(sqlstate: str) -> psycopg.Error:
    return pg.lookup(sqlstate)(f"server said {sqlstate}")


CASES: list[tuple[str, BaseException, ErrorKind]] = [
    # --- Postgres, by SQLSTATE
    ("connection lost (no SQLSTATE)", psycopg.OperationalError("server closed"), TRANSIENT),
    ("connection closed on our side", psycopg.InterfaceError("connection is closed"), TRANSIENT),
    ("pool exhausted", psycopg_pool.PoolTimeout("no connection in 10 s"), TRANSIENT),
    ("connection failure 08006", postgres("08006"), TRANSIENT),
    ("admin shutdown 57P01 (restart)", postgres("57P01"), TRANSIENT),
    ("crash shutdown 57P02", postgres("57P02"), TRANSIENT),
    ("cannot connect now 57P03 (recovering)", postgres("57P03"), TRANSIENT),
    ("disk full 53100", postgres("53100"), TRANSIENT),
    ("too many connections 53300", postgres("53300"), TRANSIENT),
    ("serialization failure 40001", postgres("40001"), TRANSIENT),
    ("deadlock 40P01", postgres("40P01"), TRANSIENT),
    ("read-only transaction 25006 (replica)", postgres("25006"), TRANSIENT),
    ("invalid text representation 22P02", postgres("22P02"), ITEM),
    ("NUL in a string 22021", postgres("22021"), ITEM),
    ("NUL refused by psycopg itself (no SQLSTATE)", psycopg.DataError("NUL bytes"), ITEM),
    ("unique violation 23505", postgres("23505"), ITEM),
    ("undefined column 42703", postgres("42703"), ITEM),
    ("program limit 54000 (tsvector too long)", postgres("54000"), ITEM),
    ("query canceled 57014 (statement timeout)", postgres("57014"), ITEM),
    # --- Kafka: retriable flag plus a short list
    ("request timed out (retriable)", kafka_errors.RequestTimedOutError(), TRANSIENT),
    ("no connection (retriable)", kafka_errors.KafkaConnectionError(), TRANSIENT),
    ("client timeout (retriable)", kafka_errors.KafkaTimeoutError(), TRANSIENT),
    ("broker not available", kafka_errors.BrokerNotAvailableError(), TRANSIENT),
    ("rebalance in progress", kafka_errors.RebalanceInProgressError(), TRANSIENT),
    ("commit failed (rebalanced away)", kafka_errors.CommitFailedError(), TRANSIENT),
    ("broker's unexpected error", kafka_errors.UnknownError(), TRANSIENT),
    ("message too large", kafka_errors.MessageSizeTooLargeError(), ITEM),
    ("record list too large", kafka_errors.RecordListTooLargeError(), ITEM),
    ("invalid topic", kafka_errors.InvalidTopicError(), ITEM),
    ("bad client configuration", kafka_errors.KafkaConfigurationError(), ITEM),
    # --- S3 transport
    ("S3 unreachable", EndpointConnectionError(endpoint_url="http://s3"), TRANSIENT),
    ("S3 read timeout", ReadTimeoutError(endpoint_url="http://s3"), TRANSIENT),
    ("S3 closed the connection", ConnectionClosedError(endpoint_url="http://s3"), TRANSIENT),
    ("body cut off mid-stream", ResponseStreamingError(error="IncompleteRead"), TRANSIENT),
    (
        "body shorter than announced",
        IncompleteReadError(actual_bytes=1, expected_bytes=9),
        TRANSIENT,
    ),
    ("urllib3 IncompleteRead", IncompleteRead(1, 9), TRANSIENT),
    ("urllib3 protocol error", ProtocolError("Connection broken"), TRANSIENT),
    ("http.client IncompleteRead", http.client.IncompleteRead(b"x", 9), TRANSIENT),
    ("server vanished", http.client.RemoteDisconnected("closed"), TRANSIENT),
    ("connection reset", ConnectionResetError(104, "reset by peer"), TRANSIENT),
    ("socket timeout", TimeoutError("timed out"), TRANSIENT),
    # --- S3 answers
    ("503 during a restart", s3_error("ServiceUnavailable", 503), TRANSIENT),
    ("500 internal error", s3_error("InternalError", 500), TRANSIENT),
    ("HEAD 502 (status as code)", s3_error("502", 502), TRANSIENT),
    ("slow down", s3_error("SlowDown", 503), TRANSIENT),
    ("bucket not loaded yet after a restart", s3_error("NoSuchBucket", 404), TRANSIENT),
    ("credentials not loaded yet", s3_error("AccessDenied", 403), TRANSIENT),
    ("throttled 429", s3_error("TooManyRequests", 429), TRANSIENT),
    ("bad range", s3_error("InvalidRange", 416), ITEM),
    ("key refused", s3_error("InvalidRequest", 400), ITEM),
    # --- glimpse's own and everything else
    ("handler says infrastructure", TransientError("db unreachable"), TRANSIENT),
    ("handler names the item's problem", ItemError("thumbnail_missing", "gone"), ITEM),
    ("worker died on the item", WorkerCrashed(3), ITEM),
    ("a bug or bad input", ValueError("cannot decode"), ITEM),
    ("deeply nested input", RecursionError("maximum recursion depth exceeded"), ITEM),
]


@pytest.mark.parametrize(("error", "kind"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_classification(error: BaseException, kind: ErrorKind) -> None:
    assert classify(error) is kind


def test_a_named_item_error_is_recorded_with_its_reason() -> None:
    assert failure_reason(ItemError("thumbnail_missing", "no thumbnail")) == "thumbnail_missing"
    assert failure_reason(WorkerCrashed(3)) == "crashed_worker"
    assert str(WorkerCrashed(3)) == "the worker died 3 times while processing this item"
    assert failure_reason(ValueError("x")) == PROCESSING_ERROR
