"""Liveness probes: is the process still answering at all? Each is one short request.

A TCP connect is not enough: the kernel accepts connections on a listening socket
even while the process behind it is stopped or stuck, so every probe waits for an
answer from the process itself.
"""

from __future__ import annotations

import socket
import struct

import httpx
import psycopg

TIMEOUT_S = 2.0


def http_answers(url: str) -> bool:
    """Any HTTP answer below 500 (an S3 server answers 403 to an anonymous GET)."""
    try:
        return httpx.get(url, timeout=TIMEOUT_S).status_code < 500
    except httpx.HTTPError:
        return False


def http_ok(url: str) -> bool:
    """A 200 from e.g. ``/healthz``."""
    try:
        return httpx.get(url, timeout=TIMEOUT_S).status_code == 200
    except httpx.HTTPError:
        return False


def postgres_answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=int(TIMEOUT_S)) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def kafka_answers(host: str, port: int) -> bool:
    """An ApiVersions (v0) request gets a response with our correlation id."""
    client_id = b"glimpse-probe"
    correlation_id = 0x6C1B
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT_S) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            header = _read_exactly(sock, 8)
    except OSError:
        return False
    return header is not None and struct.unpack(">ii", header)[1] == correlation_id


def _read_exactly(sock: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data
