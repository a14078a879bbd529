"""SeaweedFS' own locks, so that the S3 port with its keys is the only way in.

``weed mini`` opens a master, a volume server, a filer and an admin server next to
the S3 gateway, each on an HTTP port and a gRPC port (+10000), and none of them asks
who is calling: any local user could read or write ``/buckets/media/…`` through the
filer, or delete the bucket's volumes through the master (``/col/delete``). weed
reads ``security.toml`` from its working directory; the one written here

* signs volume and filer HTTP requests with JWTs (``[jwt.signing]``, ``[jwt.filer_signing]``
  and their ``.read`` keys): a request without a token gets 401. The keys are new
  at every start; the tokens live 10 s, so nothing outlives a restart.
* requires client certificates (mutual TLS) on every gRPC port and on the master's
  HTTP port, from a private CA made once with ``openssl`` and kept in ``tls/``.
  The CA's key is deleted after signing: nobody can mint another certificate.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import subprocess
from pathlib import Path

from glimpse.stack.credentials import write_private

log = logging.getLogger(__name__)

#: gRPC servers (and clients) of ``weed mini`` that take [grpc.<name>] cert/key
_GRPC_PARTS = ("master", "volume", "filer", "s3", "admin", "worker", "msg_broker", "mq", "client")


def write_security_toml(workdir: Path) -> bool:
    """Write ``workdir/security.toml`` (0600); False when mutual TLS had to be left
    out because ``openssl`` is missing (the JWTs still apply)."""
    tls = _ensure_certificates(workdir / "tls")
    write_private(workdir / "security.toml", security_toml(tls))
    return tls is not None


def security_toml(tls: Path | None) -> str:
    def key() -> str:
        return secrets.token_urlsafe(32)

    lines = [
        "# written by glimpse at every start (new keys each time); mode 0600",
        "[jwt.signing]",
        f'key = "{key()}"',
        "[jwt.signing.read]",
        f'key = "{key()}"',
        "[jwt.filer_signing]",
        f'key = "{key()}"',
        "[jwt.filer_signing.read]",
        f'key = "{key()}"',
        "[access]",
        "ui = false",
    ]
    if tls:
        cert, private_key = tls / "node.crt", tls / "node.key"
        lines += ["[grpc]", f'ca = "{tls / "ca.crt"}"']
        for part in _GRPC_PARTS:
            lines += [f"[grpc.{part}]", f'cert = "{cert}"', f'key = "{private_key}"']
        # the master's HTTP API can delete volumes and has no JWT: client certs only
        lines += [
            "[https.master]",
            f'cert = "{cert}"',
            f'key = "{private_key}"',
            f'ca = "{tls / "ca.crt"}"',
        ]
    return "\n".join(lines) + "\n"


def _ensure_certificates(folder: Path) -> Path | None:
    """A CA and one certificate (server and client) for 127.0.0.1, made once."""
    if all((folder / name).exists() for name in ("ca.crt", "node.crt", "node.key")):
        return folder
    openssl = shutil.which("openssl")
    if openssl is None:
        log.warning("openssl not found: SeaweedFS' gRPC and master ports stay open to local users")
        return None
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    extensions = folder / "node.ext"
    extensions.write_text(
        "subjectAltName = IP:127.0.0.1, DNS:localhost\n"
        "extendedKeyUsage = serverAuth, clientAuth\n"
        "basicConstraints = CA:FALSE\n"
    )
    steps = [
        [openssl, "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "3650",
         "-subj", "/CN=glimpse SeaweedFS CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        [openssl, "req", *ec, "-keyout", "node.key", "-out", "node.csr",
         "-subj", "/CN=glimpse SeaweedFS"],
        [openssl, "x509", "-req", "-in", "node.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "node.crt", "-days", "3650", "-extfile", "node.ext"],
    ]  # fmt: skip
    try:
        for step in steps:
            subprocess.run(step, cwd=folder, check=True, capture_output=True, umask=0o077)
    except subprocess.CalledProcessError as exc:
        log.warning("openssl failed (%s): SeaweedFS' gRPC and master ports stay open", exc.stderr)
        return None
    finally:
        for leftover in ("ca.key", "ca.srl", "node.csr", "node.ext"):
            (folder / leftover).unlink(missing_ok=True)
    return folder
