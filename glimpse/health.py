"""A tiny HTTP server for a worker: /healthz, /readyz, /startupz, /metrics and /status.

/startupz is for a startup probe: OK once the models are loaded, whatever the broker
or the database do (/readyz waits for them too; a startup probe on it would restart a
healthy worker during an outage)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


class HealthServer:
    """Serves in a daemon thread; ``live`` and ``ready`` are polled per request."""

    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        live: Callable[[], bool],
        ready: Callable[[], bool],
        detail: Callable[[], str] | None = None,
        status: Callable[[], dict[str, Any]] | None = None,
        started: Callable[[], bool] | None = None,
    ) -> None:
        checks = {"/healthz": live, "/readyz": ready, "/startupz": started or live}
        # /readyz's body: what a not-ready worker is doing ("loading models", "waiting
        # for postgres"), so `glimpse status` can tell loading from broken.
        details = {"/readyz": detail} if detail else {}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._reply(200, generate_latest(registry), CONTENT_TYPE_LATEST)
                elif path == "/status" and status is not None:
                    # recent throughput, lag and last error, for `glimpse status`
                    body = json.dumps(status()).encode()
                    self._reply(200, body, "application/json")
                elif path in checks:
                    ok = checks[path]()
                    text = details[path]() if path in details else ("ok" if ok else "not ok")
                    self._reply(200 if ok else 503, f"{text}\n".encode(), "text/plain")
                else:
                    self._reply(404, b"not found\n", "text/plain")

            def _reply(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return  # probes every few seconds would drown the worker's log

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
