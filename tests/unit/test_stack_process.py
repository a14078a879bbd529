"""A managed child process: paused for a while, then running on."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from glimpse.stack.process import ManagedProcess, ProcessSpec


def is_stopped(pid: int) -> bool:
    # /proc/PID/stat: "pid (comm) STATE ..." (comm may hold spaces: split after ')')
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"


def becomes_stopped(pid: int) -> bool:
    """Signals land asynchronously: wait a little for the kernel to stop ``pid``."""
    deadline = time.monotonic() + 5
    while not is_stopped(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_paused_child_is_stopped_inside_the_block_and_runs_after_it(tmp_path: Path) -> None:
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    child = ManagedProcess(ProcessSpec("sleeper", sleeper, tmp_path / "sleeper.log"))
    child.start()
    try:
        assert child.pid is not None
        with child.paused():
            assert becomes_stopped(child.pid)
        assert not is_stopped(child.pid) and child.is_running()
    finally:
        child.stop()
    assert not child.is_running()
