"""CPU and memory of process trees (a stack's parts with their children), and how busy
the whole machine was over a window."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its descendants, including those already reaped
    (Postgres backends come and go; their time lands in ``children_*``)."""
    total = 0.0
    for proc in _tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            t = proc.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


def tree_runqueue_wait_s(pid: int) -> float:
    """Seconds the tree's threads were runnable but waiting for a CPU (schedstat)."""
    total_ns = 0
    for proc in _tree(pid):
        for stat in Path(f"/proc/{proc.pid}/task").glob("*/schedstat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                total_ns += int(stat.read_text().split()[1])
    return total_ns / 1e9


def tree_memory(pid: int) -> tuple[int, int, int]:
    """(processes, RSS, PSS) of the tree. PSS splits shared pages among the processes
    sharing them, so unlike RSS it can be summed (Postgres' shared buffers)."""
    rss = pss = count = 0
    for proc in _tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            info = proc.memory_full_info()
            rss, pss, count = rss + info.rss, pss + info.pss, count + 1
    return count, rss, pss


@dataclass(frozen=True, slots=True)
class CpuSnapshot:
    cpu_s: dict[str, float]
    wait_s: dict[str, float]
    system: Any  # psutil.cpu_times(): machine-wide, to see whether both cores were busy

    @classmethod
    def take(cls, pids: dict[str, int]) -> CpuSnapshot:
        me = psutil.Process().cpu_times()
        cpu = {name: tree_cpu_seconds(pid) for name, pid in pids.items()}
        # this process: the uploader threads and the row poller (its own time only,
        # its children are the parts above)
        cpu["bench (uploader, poller)"] = me.user + me.system
        wait = {name: tree_runqueue_wait_s(pid) for name, pid in pids.items()}
        return cls(cpu, wait, psutil.cpu_times())


def machine_busy_fraction(before: Any, after: Any) -> float:
    total = sum(after) - sum(before)
    idle = (after.idle - before.idle) + (after.iowait - before.iowait)
    return 1 - idle / total if total else 0.0
