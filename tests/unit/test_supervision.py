"""The generic supervisor: each part restarted on its own thread, at once, hung parts killed."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from glimpse.stack.process import ManagedProcess, ProcessSpec
from glimpse.stack.supervision import Part, PartState, RestartPolicy, StartFailed, Supervisor

FAST = RestartPolicy(backoff_initial_s=0.2, backoff_max_s=1.0, poll_s=0.05)


def sleeper(tmp_path: Path, name: str, seconds: float = 600) -> ManagedProcess:
    return ManagedProcess(
        ProcessSpec(
            name=name,
            argv=[sys.executable, "-c", f"import time; time.sleep({seconds})"],
            log_path=tmp_path / f"{name}.log",
            stop_timeout_s=5,
        )
    )


def eventually(condition: Callable[[], bool], timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.fixture
def supervisor() -> Iterator[Supervisor]:
    sup = Supervisor(FAST)
    try:
        yield sup
    finally:
        sup.stop()


def test_a_killed_part_is_restarted_at_once(supervisor: Supervisor, tmp_path: Path) -> None:
    part = supervisor.add(Part(sleeper(tmp_path, "a"), wait_ready=lambda: None))
    supervisor.wait_ready(part, 10)
    first_pid = part.process.pid

    killed_at = time.monotonic()
    part.process.kill()
    eventually(lambda: part.process.pid != first_pid and part.state is PartState.READY)

    assert time.monotonic() - killed_at < 2  # the first restart has no backoff
    assert part.restarts == 1


def test_a_slow_readiness_wait_does_not_delay_another_parts_restart(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    slow_ready = {"delay": 0.0}
    slow = supervisor.add(
        Part(sleeper(tmp_path, "slow"), wait_ready=lambda: time.sleep(slow_ready["delay"]))
    )
    fast = supervisor.add(Part(sleeper(tmp_path, "fast"), wait_ready=lambda: None))
    supervisor.wait_ready(slow, 10)
    supervisor.wait_ready(fast, 10)
    slow_ready["delay"] = 30.0  # the next start of "slow" takes half a minute to be ready
    fast_pid = fast.process.pid

    slow.process.kill()
    fast.process.kill()
    killed_at = time.monotonic()
    eventually(lambda: fast.process.pid != fast_pid and fast.state is PartState.READY)

    assert time.monotonic() - killed_at < 2
    assert slow.state is PartState.STARTING  # still waiting, on its own thread


def test_restarts_back_off_while_a_part_keeps_crashing(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    part = supervisor.add(Part(sleeper(tmp_path, "flaky", seconds=0.1), wait_ready=lambda: None))
    started = time.monotonic()
    eventually(lambda: part.restarts >= 4, timeout_s=15)

    # immediate, then 0.2, 0.4, 0.8 s between starts: backoff, not a busy loop
    assert time.monotonic() - started > 1.2


def test_a_hung_part_is_killed_and_restarted(tmp_path: Path) -> None:
    policy = RestartPolicy(poll_s=0.05, liveness_interval_s=0.1, liveness_timeout_s=0.5)
    supervisor = Supervisor(policy)
    process = sleeper(tmp_path, "hung")
    try:
        part = supervisor.add(
            Part(process, wait_ready=lambda: None, is_live=lambda: _not_stopped(process))
        )
        supervisor.wait_ready(part, 10)
        hung_pid = process.pid
        assert hung_pid
        os.kill(hung_pid, signal.SIGSTOP)  # alive, but answers nothing any more

        eventually(lambda: process.pid != hung_pid and part.state is PartState.READY)
        assert part.restarts == 1
    finally:
        supervisor.stop()


def test_a_part_that_exits_while_starting_fails_its_first_start_with_its_log(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    process = ManagedProcess(
        ProcessSpec(
            name="broken",
            argv=[sys.executable, "-c", "import sys; print('port taken'); sys.exit(3)"],
            log_path=tmp_path / "broken.log",
        )
    )
    part = supervisor.add(Part(process, wait_ready=lambda: time.sleep(60)))

    with pytest.raises(StartFailed, match=r"exited with code 3(.|\n)*port taken"):
        supervisor.wait_ready(part, 10)


def test_stop_stops_parts_in_reverse_order(tmp_path: Path) -> None:
    stopped: list[str] = []
    supervisor = Supervisor(FAST, progress=stopped.append)
    for name in ("first", "second", "third"):
        supervisor.wait_ready(supervisor.add(Part(sleeper(tmp_path, name), lambda: None)), 10)
    processes = [p.process for p in supervisor.parts]

    supervisor.stop()

    assert stopped == ["▸ stopping third", "▸ stopping second", "▸ stopping first"]
    assert not any(p.is_running() for p in processes)


def slow_to_stop(tmp_path: Path, name: str, seconds: float = 3) -> Part:
    """A part whose process takes ``seconds`` to exit after SIGTERM, as a worker closing
    its connections does; ready once it handles SIGTERM."""
    ready = tmp_path / f"{name}.ready"
    code = (
        "import pathlib, signal, sys, time\n"
        f"signal.signal(signal.SIGTERM, lambda *_: (time.sleep({seconds}), sys.exit(0)))\n"
        f"pathlib.Path({str(ready)!r}).touch()\n"
        "time.sleep(600)\n"
    )
    process = ManagedProcess(
        ProcessSpec(
            name=name,
            argv=[sys.executable, "-c", code],
            log_path=tmp_path / f"{name}.log",
            stop_timeout_s=10,
        )
    )
    return Part(process, lambda: eventually(ready.exists))


def test_parts_that_need_only_the_server_stop_together_and_before_it(tmp_path: Path) -> None:
    running: dict[str, dict[str, bool]] = {}  # at each "stopping": which processes ran

    def seen(message: str) -> None:
        running[message.removeprefix("▸ stopping ")] = {
            p.name: p.process.is_running() for p in supervisor.parts
        }

    supervisor = Supervisor(FAST, progress=seen)
    server = supervisor.add(Part(sleeper(tmp_path, "server"), lambda: None))
    for name in ("api", "worker"):
        part = slow_to_stop(tmp_path, name)
        part.needs = [server]
        supervisor.wait_ready(supervisor.add(part), 10)
    supervisor.wait_ready(server, 10)

    supervisor.stop()

    # each client was asked to stop while the other was still closing: together
    assert running["api"]["worker"] and running["worker"]["api"]
    # the server only once both were gone
    assert running["server"] == {"server": True, "api": False, "worker": False}


def _not_stopped(process: ManagedProcess) -> bool:
    """A stand-in for an HTTP liveness probe: a SIGSTOPped process answers nothing."""
    state = Path(f"/proc/{process.pid}/stat").read_text().split()[2]
    return state != "T"


def test_restart_on_request_starts_the_part_again_at_once(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    """What the recipe does to the broker when its S3 store came back."""
    part = supervisor.add(Part(sleeper(tmp_path, "broker"), wait_ready=lambda: None))
    supervisor.wait_ready(part, 10)
    first_pid = part.process.pid

    supervisor.restart("broker")

    eventually(lambda: part.process.pid != first_pid and part.state is PartState.READY, 3)
