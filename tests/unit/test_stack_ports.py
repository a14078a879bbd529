"""Ports of the embedded stack: free ports, and one health port per worker process."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from glimpse.config import Settings, StackSettings
from glimpse.stack.ports import (
    free_port,
    private_settings,
    scrape_targets,
    worker_health_ports,
    worker_replicas,
)


def test_one_process_per_stage_by_default_on_its_configured_port() -> None:
    stack = StackSettings()
    assert worker_health_ports(stack) == {
        "ingest": 9101,
        "caption": 9102,
        "embed": 9103,
        "transcribe": 9104,
        "transcribe-queries": 9105,
    }


def test_replicas_are_named_after_their_stage_and_get_ports_of_their_own() -> None:
    stack = StackSettings.model_validate(
        {"replicas": {"caption": 3, "embed": 2}, "replica_base_port": 9200}
    )
    replicas = worker_replicas(stack)
    assert [(r.name, r.stage, r.port) for r in replicas] == [
        ("ingest", "ingest", 9101),
        ("caption", "caption", 9102),
        ("caption-2", "caption", 9200),
        ("caption-3", "caption", 9201),
        ("embed", "embed", 9103),
        ("embed-2", "embed", 9202),
        ("transcribe", "transcribe", 9104),
        ("transcribe-queries", "transcribe-queries", 9105),
    ]
    ports = [r.port for r in replicas]
    assert len(set(ports)) == len(ports)


def test_replicas_are_set_per_stage_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GLIMPSE_STACK__REPLICAS__CAPTION", "2")
    monkeypatch.setenv("GLIMPSE_STACK__REPLICAS__TRANSCRIBE_QUERIES", "3")
    names = list(worker_health_ports(Settings().stack))
    assert names.count("caption-2") == 1
    assert [n for n in names if n.startswith("transcribe-queries")] == [
        "transcribe-queries",
        "transcribe-queries-2",
        "transcribe-queries-3",
    ]


def test_a_replica_count_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="caption"):
        StackSettings.model_validate({"replicas": {"caption": 0}})
    with pytest.raises(ValueError, match="embed"):
        StackSettings.model_validate({"replicas": {"embed": 9}})


def test_private_settings_leave_room_for_the_most_replicas(tmp_path: Path) -> None:
    settings = private_settings(tmp_path)
    most = {stage: 8 for stage in ("ingest", "caption", "embed", "transcribe")}
    stack = settings.stack.model_copy(
        update={"replicas": settings.stack.replicas.model_validate(most)}
    )
    ports = list(worker_health_ports(stack).values())
    assert len(set(ports)) == len(ports)
    servers = {
        value
        for name, value in stack.model_dump().items()
        if name.endswith("_port") and not name.endswith("health_port")
    } - {stack.replica_base_port}
    assert not servers & set(ports)
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # free: nothing else handed it out


def test_free_port_with_a_span_hands_out_none_of_it_again() -> None:
    first = free_port(span=10)
    others = {free_port() for _ in range(200)}
    assert not others & set(range(first, first + 10))


def test_prometheus_scrapes_every_replica_under_its_stage_job() -> None:
    settings = Settings()
    settings.stack.replicas.caption = 2
    jobs = scrape_targets(settings)
    assert jobs["glimpse-caption"] == ["127.0.0.1:9102", "127.0.0.1:9110"]
    assert jobs["glimpse-ingest"] == ["127.0.0.1:9101"]
    assert jobs["glimpse-lag-exporter"] == ["127.0.0.1:9106"]
    assert jobs["glimpse-search-api"] == ["127.0.0.1:8080"]
