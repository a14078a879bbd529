"""One child process of the embedded stack: started with its log file, stopped by pid."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Ask the kernel to SIGTERM the child when the supervisor dies (even by kill -9)."""
    with contextlib.suppress(OSError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class ProcessSpec:
    """How to run one server or worker."""

    name: str
    argv: list[str]
    log_path: Path
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    stop_signal: int = signal.SIGTERM
    stop_timeout_s: float = 30.0


class ManagedProcess:
    """A started child. Only this object ever signals it, and only by its own pid."""

    def __init__(self, spec: ProcessSpec) -> None:
        self.spec = spec
        self._popen: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    def start(self) -> None:
        spec = self.spec
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **spec.env}
        # Logs can hold what a server prints about its setup: owner only.
        fd = os.open(spec.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "ab") as log_file:
            log_file.write(f"\n==== {time.strftime('%F %T')} starting {spec.name}\n".encode())
            log_file.flush()
            # A new session keeps a terminal Ctrl-C away from children: the supervisor
            # stops them itself, in reverse start order.
            self._popen = subprocess.Popen(
                spec.argv,
                cwd=spec.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only calls prctl, async-signal-safe
                user=spec.user,
                umask=0o077,  # what a server creates (data, sockets, logs) is its own
            )
        self.started_at = time.monotonic()
        log.info("started %s (pid %s)", spec.name, self._popen.pid)

    def exit_code(self) -> int | None:
        """None while running."""
        return None if self._popen is None else self._popen.poll()

    def is_running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def stop(self) -> None:
        if not self.is_running():
            return
        assert self._popen is not None
        self._popen.send_signal(self.spec.stop_signal)
        try:
            self._popen.wait(timeout=self.spec.stop_timeout_s)
        except subprocess.TimeoutExpired:
            log.warning(
                "%s did not stop in %ss; killing it", self.spec.name, self.spec.stop_timeout_s
            )
            self._popen.kill()
            self._popen.wait()
        log.info("stopped %s", self.spec.name)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """SIGSTOP until the block ends: for tests that need a worker to be slow."""
        if not self.is_running():
            yield
            return
        assert self._popen is not None
        self._popen.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self._popen.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL: for tests that simulate a crash."""
        if self.is_running():
            assert self._popen is not None
            self._popen.kill()
            self._popen.wait()
