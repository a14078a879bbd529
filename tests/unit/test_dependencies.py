"""A worker waits for what it needs, with backoff, and says what it waits for."""

from __future__ import annotations

import threading

import httpx
from prometheus_client import CollectorRegistry

from glimpse.dependencies import Dependency, wait_for
from glimpse.health import HealthServer


def test_waits_until_every_dependency_answers_and_reports_the_missing_ones() -> None:
    answers = {"postgres": 3, "broker": 1}  # failed checks before each one works
    reported: list[list[str]] = []

    def check(name: str) -> None:
        if answers[name] > 0:
            answers[name] -= 1
            raise ConnectionError(f"{name} is down")

    deps = [Dependency(name, lambda name=name: check(name)) for name in answers]
    assert wait_for(deps, threading.Event(), reported.append, initial_s=0.01, max_s=0.02)

    assert reported == [["postgres", "broker"], ["postgres"], ["postgres"], []]


def test_a_stop_ends_the_wait() -> None:
    stop = threading.Event()

    def down() -> None:
        stop.set()  # e.g. SIGTERM while Postgres is still down
        raise ConnectionError("down")

    assert not wait_for([Dependency("postgres", down)], stop, initial_s=0.01)


def test_readyz_says_what_a_worker_is_doing() -> None:
    phase = ["waiting for postgres"]
    server = HealthServer(
        "127.0.0.1", 0, CollectorRegistry(), live=lambda: True, ready=lambda: False,
        detail=lambda: phase[0],
    )  # fmt: skip
    server.start()
    try:
        response = httpx.get(f"http://127.0.0.1:{server.port}/readyz")
        assert (response.status_code, response.text) == (503, "waiting for postgres\n")
        assert httpx.get(f"http://127.0.0.1:{server.port}/healthz").status_code == 200
    finally:
        server.stop()


def test_startupz_is_ok_once_the_models_are_in_whatever_the_dependencies_do() -> None:
    loaded = threading.Event()
    server = HealthServer(
        "127.0.0.1", 0, CollectorRegistry(), live=lambda: True, ready=lambda: False,
        started=loaded.is_set,
    )  # fmt: skip
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}"
        assert httpx.get(f"{url}/startupz").status_code == 503
        loaded.set()
        assert httpx.get(f"{url}/startupz").status_code == 200
        assert httpx.get(f"{url}/readyz").status_code == 503  # still waiting for postgres
    finally:
        server.stop()
