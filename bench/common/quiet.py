"""A quiet machine: wait for one before timing (other sessions run test suites here),
and measure how much CPU other processes used while a benchmark ran."""

from __future__ import annotations

import contextlib
import os
import threading
import time

import psutil

from bench.common.report import say


def _loads() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def wait_for_low_load(max_load: float, timeout_s: float) -> str:
    """Wait until the 1-minute load average is below ``max_load`` (other sessions run
    test suites here); say what was seen either way."""
    started = time.monotonic()
    first = _loads()
    while os.getloadavg()[0] >= max_load and time.monotonic() - started < timeout_s:
        say(f"  load average {_loads()}: waiting for < {max_load} …")
        time.sleep(10)
    waited = time.monotonic() - started
    now = os.getloadavg()[0]
    verdict = "below" if now < max_load else f"still not below after {waited:.0f} s:"
    return (
        f"load average {first} at the start; {verdict} {max_load} after {waited:.0f} s "
        f"(now {_loads()})"
    )


def wait_for_idle_cpus(label: str, max_busy: float = 25.0, timeout_s: float = 60.0) -> str:
    """Before a timed phase, while this process (and the idle stack) does nothing: how
    busy the machine is over 2 s; wait a little if someone else is using the cores.
    (The load average cannot tell: it still remembers this run's own work.)"""
    started = time.monotonic()
    busy = psutil.cpu_percent(interval=2.0)
    while busy > max_busy and time.monotonic() - started < timeout_s:
        say(f"  machine {busy:.0f} % busy before {label}: waiting …")
        busy = psutil.cpu_percent(interval=5.0)
    waited = time.monotonic() - started
    return f"{label}: machine {busy:.0f} % busy (after {waited:.0f} s), load average {_loads()}"


class OtherLoad:
    """Samples, every 2 s, the CPU time of every process outside this one's tree
    (Postgres and its workers are inside): what else ran during the benchmark."""

    def __init__(self, interval_s: float = 2.0) -> None:
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="other-load", daemon=True)
        self._seen: dict[tuple[int, float], float] = {}
        self._mine: set[tuple[int, float]] = set()
        self._started = 0.0
        self.other_cpu_s = 0.0
        self.wall_s = 0.0

    def __enter__(self) -> OtherLoad:
        self._started = time.time()
        self._sample(first=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.wall_s = time.time() - self._started

    @property
    def share(self) -> float:
        """Other processes' CPU as a share of all cores over the run."""
        cores = psutil.cpu_count(logical=True) or 1
        return self.other_cpu_s / max(self.wall_s * cores, 1e-9)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._sample(first=False)
        self._sample(first=False)

    def _sample(self, first: bool) -> None:
        me = os.getpid()
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                key = (proc.pid, proc.create_time())
                if key in self._mine:
                    continue
                if key not in self._seen and (
                    proc.pid == me or any(a.pid == me for a in proc.parents())
                ):
                    self._mine.add(key)
                    continue
                times = proc.cpu_times()
                total = times.user + times.system
                before = self._seen.get(key)
                if before is None:
                    # new since the start: all its CPU time fell in the run
                    before = total if first or key[1] < self._started else 0.0
                self.other_cpu_s += total - before
                self._seen[key] = total
