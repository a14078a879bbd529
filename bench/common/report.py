"""What every benchmark prints and records: progress lines, the machine it ran on,
Markdown tables, and the dated section appended to bench/RESULTS.md."""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import subprocess
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import PIL
import psutil
from PIL import features

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "bench" / "RESULTS.md"


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- recording -----------------------------------------------------------------------


def add_output_args(parser: argparse.ArgumentParser) -> None:
    """``--results`` and ``--no-record``, as every benchmark takes them."""
    parser.add_argument("--results", type=Path, default=RESULTS, help="Markdown file to append to")
    parser.add_argument("--no-record", action="store_true", help="print only, append nothing")


def record(markdown: str, path: Path) -> None:
    if not path.exists():
        path.write_text(
            "# Benchmark results\n\nAppended by the benchmarks (see README.md); newest last.\n"
        )
    with path.open("a") as out:
        out.write("\n" + markdown)


def publish(markdown: str, args: argparse.Namespace) -> None:
    """Print the run's Markdown; append it to ``args.results`` unless ``--no-record``."""
    print("\n" + markdown)
    if not args.no_record:
        record(markdown, args.results)
        say(f"appended to {args.results}")


# --- the machine ---------------------------------------------------------------------


def machine_info(
    extra: dict[str, str] | None = None, *, with_torch: bool = False
) -> dict[str, str]:
    """The machine and the code measured; ``extra`` lines go before the commit.
    ``with_torch``: torch's version and threads first among them (imports torch, so
    only for the benchmarks that run models)."""
    if with_torch:
        import torch

        threads = f"{torch.__version__} ({torch.get_num_threads()} threads)"
        extra = {"torch": threads, **(extra or {})}
    memory = psutil.virtual_memory().total
    # Anything else running skews every number: measure it, and say so.
    busy = psutil.cpu_percent(interval=2.0)
    return {
        "CPU": _cpu_model(),
        "cores": f"{psutil.cpu_count(logical=True)} logical, "
        f"{psutil.cpu_count(logical=False)} physical",
        "RAM": f"{memory / (1 << 30):.1f} GiB",
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "Pillow": f"{PIL.__version__} (libjpeg-turbo {features.version('libjpeg_turbo')})",
        **(extra or {}),
        "glimpse commit": _git_commit(),
        "before the run": f"machine {busy:.0f} % busy (other processes), load average "
        + " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _git_commit() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    # Uncommitted changes to glimpse are measured too: say so (the bench's own are not).
    dirty = git("status", "--porcelain", "--", ".", ":(exclude)bench")
    return commit + (" (with uncommitted changes)" if dirty else "")


# --- Markdown ------------------------------------------------------------------------


def report_header(title: str, machine: dict[str, str]) -> list[str]:
    """A dated ``## {title} — …`` heading and the machine as a bullet list."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return [f"## {title} — {stamp}", "", *(f"- **{k}**: {v}" for k, v in machine.items())]


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def percentile(values: Sequence[float], q: float) -> float:
    """``np.percentile``, NaN for no values (a run where nothing got through)."""
    return float(np.percentile(values, q)) if values else float("nan")


def of_one_core(cpu_s: float, wall_s: float) -> str:
    """CPU seconds over a window as a share of one core (100 % = one core all along)."""
    return f"{100 * cpu_s / wall_s:.0f} %"
