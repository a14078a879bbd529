"""Generic process supervision: each part on its own thread, restarted on its own.

A ``Supervisor`` knows nothing about glimpse. It is given ``Part``s (a process, how to
tell it is ready, optionally how to tell it is alive) and, for each, runs one thread
that starts the process, waits for its readiness, watches it, and when it exits or
stops being live restarts it with its own backoff. No part's readiness wait or
backoff ever delays another part's restart: a Postgres, broker and S3 store killed
together come back together.

The thread that starts a child is also the one that lives as long as the part:
children get ``PR_SET_PDEATHSIG``, which fires when the *thread* that forked them
exits (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from glimpse.stack.process import ManagedProcess

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """When and how fast parts are restarted."""

    # Backoff between restarts: the first restart is immediate, then 1, 2, 4 … max s;
    # the count resets once a part has stayed up for ``healthy_after_s``.
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0
    healthy_after_s: float = 60.0
    # A ready part whose liveness probe fails for this long is killed and restarted.
    liveness_timeout_s: float = 30.0
    liveness_interval_s: float = 2.0
    poll_s: float = 0.1

    def delay(self, restarts: int) -> float:
        """Seconds to wait before restart number ``restarts + 1``."""
        if restarts == 0:
            return 0.0
        return float(min(self.backoff_max_s, self.backoff_initial_s * 2.0 ** (restarts - 1)))


class PartState(StrEnum):
    STARTING = "starting"
    READY = "ready"
    RESTARTING = "restarting"  # exited or killed; waiting out its backoff
    STOPPED = "stopped"


class StartFailed(RuntimeError):
    """A part exited or never became ready on its first start."""


@dataclass(eq=False)
class Part:
    """One supervised process: how to tell it is ready, alive, and what follows a restart.

    ``wait_ready`` blocks until the process serves (raises on timeout); ``is_live`` is
    polled once the part is ready; ``after_restart`` runs (on the part's thread) each
    time a restarted process became ready. ``needs``: the parts that must outlive it
    when the supervisor stops (None: every part added before it).
    """

    process: ManagedProcess
    wait_ready: Callable[[], object]
    is_live: Callable[[], bool] | None = None
    after_restart: Callable[[], None] | None = None
    needs: list[Part] | None = None
    restarts: int = 0
    state: PartState = PartState.STOPPED
    ready_once: threading.Event = field(default_factory=threading.Event)
    start_error: BaseException | None = None

    @property
    def name(self) -> str:
        return self.process.spec.name


class Supervisor:
    """Runs parts, each on its own thread, until ``stop()`` stops them in reverse order."""

    def __init__(
        self,
        policy: RestartPolicy | None = None,
        progress: Progress | None = None,
        on_change: Callable[[], None] | None = None,
    ):
        self.policy = policy or RestartPolicy()
        self.parts: list[Part] = []
        self._progress = progress or (lambda message: None)
        # called (from a part's thread) whenever a part changes state
        self._on_change = on_change or (lambda: None)
        self._threads: dict[int, tuple[threading.Thread, threading.Event]] = {}
        self._lock = threading.Lock()

    # --- public --------------------------------------------------------------------
    def add(self, part: Part) -> Part:
        """Start supervising ``part`` now; returns at once (see ``wait_ready``)."""
        stop = threading.Event()
        thread = threading.Thread(
            target=self._run, args=(part, stop), name=f"supervise-{part.name}", daemon=True
        )
        with self._lock:
            self.parts.append(part)
            self._threads[id(part)] = (thread, stop)
        thread.start()
        return part

    def wait_ready(self, part: Part, timeout_s: float | None = None) -> None:
        """Block until ``part`` was ready once; raise ``StartFailed`` if its first start
        failed (it exited, or its readiness check gave up)."""
        if not part.ready_once.wait(timeout_s):
            raise TimeoutError(f"{part.name} not ready after {timeout_s:.0f}s")
        if part.start_error is not None:
            raise StartFailed(str(part.start_error)) from part.start_error

    def part(self, name: str) -> Part:
        return next(p for p in self.parts if p.name == name)

    def restart(self, name: str) -> None:
        """Kill a part so its thread starts it again at once (e.g. a server that does
        not recover by itself when something it depends on restarted)."""
        part = self.part(name)
        log.info("restarting %s on request", part.name)
        self._progress(f"! restarting {part.name}")
        part.process.kill()

    def stop(self) -> None:
        """Stop every part once the parts that need it have stopped; parts that do not
        wait on each other stop at the same time (each process takes a second or two to
        close its connections and exit: one after another, a stack took 13 s)."""
        with self._lock:
            parts = list(self.parts)
        stopped = {id(part): threading.Event() for part in parts}

        def stop_one(part: Part) -> None:
            try:
                for dependent in _needing(part, parts):
                    stopped[id(dependent)].wait()
                self._progress(f"▸ stopping {part.name}")
                thread, stop = self._threads[id(part)]
                stop.set()
                thread.join()
                part.process.stop()  # in case its thread had already gone
            finally:
                stopped[id(part)].set()

        stoppers = [
            threading.Thread(target=stop_one, args=(part,), name=f"stop-{part.name}")
            for part in parts
        ]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join()
        with self._lock:
            self.parts.clear()
            self._threads.clear()

    # --- one part's thread -----------------------------------------------------------
    def _run(self, part: Part, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                became_ready = self._start(part, stop)
                if became_ready:
                    self._watch(part, stop)
                if stop.is_set():
                    break
                self._back_off(part, stop)
        finally:
            part.process.stop()
            self._set(part, PartState.STOPPED)
            part.ready_once.set()  # nobody waits forever on a stopped part

    def _start(self, part: Part, stop: threading.Event) -> bool:
        """Start the process and wait for readiness; False if it failed or we stopped."""
        self._set(part, PartState.STARTING)
        first = not part.ready_once.is_set()
        try:
            part.process.start()
            self._wait_ready(part, stop)
        except Exception as exc:
            if stop.is_set():
                return False
            log.warning("%s did not start: %s", part.name, exc)
            part.process.kill()
            if first:
                part.start_error = exc
                part.ready_once.set()
            return False
        if stop.is_set():
            return False
        self._set(part, PartState.READY)
        if first:
            part.ready_once.set()
        else:
            self._progress(f"  {part.name} restarted")
            log.info("%s restarted (restart #%d)", part.name, part.restarts)
            if part.after_restart:
                try:
                    part.after_restart()
                except Exception:
                    log.exception("after restarting %s", part.name)
        return True

    def _wait_ready(self, part: Part, stop: threading.Event) -> None:
        """``part.wait_ready`` on a helper thread, so an exit or a stop ends the wait."""
        outcome: list[BaseException | None] = []
        waiter = threading.Thread(
            target=_capture, args=(part.wait_ready, outcome), name=f"ready-{part.name}", daemon=True
        )
        waiter.start()
        while waiter.is_alive():
            waiter.join(self.policy.poll_s)
            if stop.is_set():
                return
            if not part.process.is_running():
                log_path = part.process.spec.log_path
                raise RuntimeError(
                    f"{part.name} exited with code {part.process.exit_code()} while starting; "
                    f"last lines of {log_path}:\n{tail(log_path)}"
                )
        if outcome and outcome[0] is not None:
            raise outcome[0]

    def _watch(self, part: Part, stop: threading.Event) -> None:
        """Until the process exits, stops being live, or we are asked to stop."""
        policy = self.policy
        last_live = time.monotonic()
        next_probe = last_live + policy.liveness_interval_s
        while not stop.wait(policy.poll_s):
            now = time.monotonic()
            if not part.process.is_running():
                log.warning("%s exited with code %s", part.name, part.process.exit_code())
                self._progress(f"! {part.name} exited (code {part.process.exit_code()})")
                return
            if part.restarts and now - part.process.started_at > policy.healthy_after_s:
                part.restarts = 0
            if part.is_live is None or now < next_probe:
                continue
            next_probe = now + policy.liveness_interval_s
            if _probe(part.is_live):
                last_live = time.monotonic()
            elif time.monotonic() - last_live > policy.liveness_timeout_s:
                log.warning(
                    "%s not live for %.0fs; killing it", part.name, policy.liveness_timeout_s
                )
                self._progress(f"! {part.name} hung (not live); killing it")
                part.process.kill()
                return

    def _set(self, part: Part, state: PartState) -> None:
        part.state = state
        try:
            self._on_change()
        except Exception:
            log.exception("reporting the state of %s", part.name)

    def _back_off(self, part: Part, stop: threading.Event) -> None:
        self._set(part, PartState.RESTARTING)
        delay = self.policy.delay(part.restarts)
        part.restarts += 1
        if delay:
            self._progress(f"  restarting {part.name} in {delay:.0f}s")
        stop.wait(delay)


def _probe(check: Callable[[], bool]) -> bool:
    try:
        return check()
    except Exception:
        return False


def _capture(action: Callable[[], object], outcome: list[BaseException | None]) -> None:
    try:
        action()
        outcome.append(None)
    except BaseException as exc:
        outcome.append(exc)


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log, for an error message."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _needing(part: Part, parts: list[Part]) -> list[Part]:
    """The parts among ``parts`` that need ``part`` (see ``Part.needs``)."""
    position = {id(p): index for index, p in enumerate(parts)}
    return [
        other
        for other in parts
        if other is not part
        and (
            any(needed is part for needed in other.needs)
            if other.needs is not None
            else position[id(other)] > position[id(part)]
        )
    ]
