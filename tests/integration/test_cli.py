"""The `glimpse` command as a user runs it: up --detach, status, ingest --wait, down."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from badfiles import jpeg
from harness import private_settings
from helpers import glimpse, unique_png

from glimpse.stack.supervisor import service_env

pytestmark = pytest.mark.integration


def wait_until_all_ready(env: dict[str, str], timeout_s: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        report: dict[str, Any] = json.loads(glimpse(env, "status", "--json").stdout)
        if all(part["ok"] for part in report["health"].values()):
            return report
        assert time.monotonic() < deadline, report["health"]
        time.sleep(1)


def test_up_status_ingest_down(tmp_path: Path) -> None:
    settings = private_settings(tmp_path / "home")
    env = {**os.environ, **service_env(settings)}
    photos = tmp_path / "photos"
    (photos / "2024").mkdir(parents=True)
    (photos / "2024" / "sunset.jpg").write_bytes(jpeg(800, 600))
    (photos / "tiny.png").write_bytes(unique_png(123))
    (photos / "notes.jpg").write_text("not a photo\n" * 10)

    started = glimpse(env, "up", "--detach")
    assert started.returncode == 0, started.stderr
    try:
        # `up` returns once the servers and the API are ready; workers may still load
        status = glimpse(env, "status", "--json")
        assert status.returncode == 0, status.stdout + status.stderr
        secrets = secrets_of(settings.home)
        assert not any(secret in status.stdout for secret in secrets)
        # not a terminal: the link names the key's file instead of the key
        assert not any(secret in started.stdout + started.stderr for secret in secrets)
        assert "credentials/api-key" in started.stderr
        assert_private(settings.home, secrets)
        report = json.loads(status.stdout)
        assert {part["state"] for part in report["health"].values()} <= {"ok", "loading"}
        for name in ("s3", "kafka", "database"):
            assert report["health"][name]["ok"], report["health"]
        report = wait_until_all_ready(env)
        creds_file = Path(report["endpoints"]["s3_credentials_file"])
        assert creds_file.stat().st_mode & 0o777 == 0o600
        assert report["endpoints"]["api_url"] == f"http://127.0.0.1:{settings.api.port}"

        ingested = glimpse(env, "ingest", str(photos), "--prefix", "cli/", "--wait")
        out = ingested.stdout
        # one rejected file: the command says so in its exit code and in words
        assert ingested.returncode == 1, out + ingested.stderr
        assert "cli/2024/sunset.jpg" in out and "accepted" in out and "800x600" in out
        assert "cli/notes.jpg" in out and "unsupported_type" in out

        counts = json.loads(glimpse(env, "status", "--json").stdout)["media"]
        assert (counts["accepted"], counts["rejected"]) == (2, 1)
        stages = wait_until_caught_up(env)
        assert set(stages) == {"ingest", "caption", "embed", "transcribe", "transcribe-queries"}
        assert stages["ingest"]["messages_per_minute"] > 0
        assert stages["ingest"]["partitions"]  # one entry per partition of glimpse.objects
        table = glimpse(env, "status").stdout
        assert "msgs/min" in table and "last error" in table
        assert report["endpoints"]["api_key_file"].endswith("api-key")
        supervisor = psutil.Process(
            json.loads((settings.home / "run" / "endpoints.json").read_text())["supervisor_pid"]
        )
        children = supervisor.children(recursive=True)
        assert len(children) >= 8  # 2 weed, tansu, postgres, ingest, caption, embed, api

        searched = glimpse(env, "search", "a photo", "--json")
        assert searched.returncode == 0, searched.stderr
    finally:
        stopped = glimpse(env, "down")
    assert stopped.returncode == 0, stopped.stderr
    _gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"orphans left behind: {alive}"
    assert glimpse(env, "status").returncode == 1  # not running any more


def wait_until_caught_up(env: dict[str, str], timeout_s: float = 120) -> dict[str, Any]:
    """`glimpse status --json`'s stages once every group's lag reads 0."""
    deadline = time.monotonic() + timeout_s
    while True:
        stages: dict[str, Any] = json.loads(glimpse(env, "status", "--json").stdout)["stages"]
        if all(stage["lag"] == 0 for stage in stages.values()):
            return stages
        assert time.monotonic() < deadline, stages
        time.sleep(1)


def secrets_of(home: Path) -> list[str]:
    """The admin API key, the S3 secret key and both Postgres passwords of a home."""
    credentials = home / "credentials"
    s3 = json.loads((credentials / "s3.json").read_text())
    postgres = json.loads((credentials / "postgres.json").read_text())
    return [
        (credentials / "api-key").read_text().strip(),
        s3["secret_key"],
        postgres["superuser_password"],
        postgres["password"],
    ]


def assert_private(home: Path, secrets: list[str]) -> None:
    """Logs and run state are the owner's alone and name no secret; data folders too."""
    for folder in ("logs", "run", "credentials", "s3-media", "s3-broker", "postgres/data"):
        assert (home / folder).stat().st_mode & 0o777 == 0o700, folder
    for folder in ("logs", "run"):
        for path in (home / folder).rglob("*"):
            if path.is_file():
                assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"
                text = path.read_text(errors="replace")
                leaked = [s for s in secrets if s in text]
                assert not leaked, f"{path} holds a secret"
