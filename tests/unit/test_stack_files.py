"""Files the embedded stack writes are its owner's alone."""

from __future__ import annotations

import time
from pathlib import Path

from glimpse.stack.layout import HomeLayout
from glimpse.stack.process import ManagedProcess, ProcessSpec
from glimpse.stack.weed_security import security_toml


def test_ensure_tightens_folders_and_files_left_open_by_older_versions(tmp_path: Path) -> None:
    layout = HomeLayout.at(tmp_path / "home")
    layout.logs.mkdir(parents=True, mode=0o755)
    old_log = layout.logs / "up.console.log"
    old_log.write_text("web page: http://127.0.0.1:8080/#key=glk_old\n")
    old_log.chmod(0o644)

    layout.ensure()

    for folder in (layout.logs, layout.run, layout.api_key.parent):
        assert folder.stat().st_mode & 0o777 == 0o700
    assert old_log.stat().st_mode & 0o777 == 0o600


def test_a_child_and_its_log_are_private(tmp_path: Path) -> None:
    spec = ProcessSpec("toucher", ["sh", "-c", "echo hi; touch made"], tmp_path / "log")
    spec.cwd = tmp_path
    process = ManagedProcess(spec)
    process.start()
    while process.is_running():
        time.sleep(0.01)
    assert (tmp_path / "log").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "made").stat().st_mode & 0o777 == 0o600  # umask 077


def test_security_toml_has_fresh_jwt_keys_and_client_certificates(tmp_path: Path) -> None:
    first, second = security_toml(tmp_path), security_toml(tmp_path)
    assert first != second  # new keys at every start
    for section in ("[jwt.signing]", "[jwt.signing.read]", "[jwt.filer_signing]",
                    "[jwt.filer_signing.read]", "[grpc.worker]", "[grpc.client]",
                    "[https.master]"):  # fmt: skip
        assert section in first
    assert f'ca = "{tmp_path / "ca.crt"}"' in first
    assert "[grpc" not in security_toml(None)  # without openssl: the JWTs alone
