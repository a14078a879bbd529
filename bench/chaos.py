"""Chaos benchmark: ``kill -9`` every kind of process under steady uploads.

    python -m bench.chaos [--interval 0.3] [--audio-every 10] [--no-record]   (make chaos)

One run, on a private embedded stack (fresh temporary home, free ports):

1. `glimpse up` timings: ``EmbeddedStack.start()`` until it returns (servers and API
   ready) and until every worker is ready, cold (fresh home) and warm (the same home
   again);
2. steady uploads (an image every ``--interval`` s; a tone clip and a voice query every
   ``--audio-every`` images) while each fault of ``bench.common.chaos.ALL_FAULTS`` is
   injected in turn: each worker kind, Postgres, the broker, both S3 stores, then
   Postgres + broker + media S3 together. Per fault: seconds from the kill to the next
   committed batch (goal ≤ 15 s);
3. at the end: every image has one accepted media row, one caption, one text and one
   visual vector per active model; every clip one final row (and if accepted one
   transcript and one text vector).

Prints Markdown and appends it, dated, to bench/RESULTS.md (``--no-record``: print only).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common.chaos import (
    ALL_FAULTS,
    ChaosRun,
    CommitWatch,
    Completeness,
    Recovery,
    SteadyLoad,
    quick_repair,
    wait_complete,
    worker_ports,
)
from bench.common.report import add_output_args, machine_info, publish, report_header, say, table
from glimpse.config import Settings
from glimpse.stack.ports import private_settings
from glimpse.stack.supervisor import EmbeddedStack

GOAL_S = 15.0


@dataclass(frozen=True, slots=True)
class StartTiming:
    label: str
    up_s: float  # start() returned: servers and API ready
    all_ready_s: float  # every worker ready
    loading_at_up: list[str]


def timed_start(stack: EmbeddedStack, label: str) -> tuple[Settings, StartTiming]:
    started = time.monotonic()
    resolved = stack.start()
    up_s = time.monotonic() - started
    loading = stack.loading()
    stack.wait_all_ready()
    return resolved, StartTiming(label, up_s, time.monotonic() - started, loading)


def report(
    args: argparse.Namespace,
    machine: dict[str, str],
    starts: list[StartTiming],
    recoveries: list[Recovery],
    load: SteadyLoad,
    done: Completeness,
    wall_s: float,
) -> str:
    out = report_header("Chaos", machine)
    out += [
        f"- **command**: `python -m bench.chaos {' '.join(args.argv)}` "
        f"({wall_s / 60:.1f} min in all)",
        "",
        "`glimpse up` (`EmbeddedStack.start()`): *up* = it returned (servers and API ready, "
        "uploads accepted), *all ready* = every worker ready too (goals: up ≤ 8 s warm, "
        "all ready ≤ 20 s).",
        "",
        table(
            ["start", "up s", "all ready s", "still loading when up returned"],
            [
                [t.label, f"{t.up_s:.1f}", f"{t.all_ready_s:.1f}", ", ".join(t.loading_at_up)]
                for t in starts
            ],
        ),
        "",
        f"Steady uploads: an image every {args.interval} s"
        + (
            f", a tone clip and a voice query every {args.audio_every} images"
            if args.audio_every
            else ""
        )
        + f". Seconds from `kill -9` to the next committed batch of each watched worker "
        f"(goal ≤ {GOAL_S:.0f} s); a server's fault is watched on ingest, caption and embed.",
        "",
        table(
            ["fault (kill -9)", "recovered s", "per worker", "goal"],
            [_row(r) for r in recoveries],
        ),
        "",
        f"At the end: {done.images_complete} of {done.images} images complete (one accepted "
        "media row, one caption, a text and a visual vector per active model); "
        f"{done.clips_final} of {done.clips} clips final; {load.voice_queries} voice "
        f"queries sent; {load.failed_puts} PUTs failed while S3 was down and were retried.",
    ]
    if done.problems:
        out += ["", f"**Incomplete** ({len(done.problems)}), e.g.:", ""]
        out += [f"- {p}" for p in done.problems[:10]]
    return "\n".join(out) + "\n"


def _row(r: Recovery) -> list[str]:
    seconds = r.seconds
    per = ", ".join(
        f"{name} {'never' if s is None else f'{s:.1f}'}" for name, s in r.per_worker.items()
    )
    verdict = "missed" if seconds is None or seconds > GOAL_S else "met"
    return [r.fault.name, "not recovered" if seconds is None else f"{seconds:.1f}", per, verdict]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument("--interval", type=float, default=0.3, help="seconds between images")
    parser.add_argument(
        "--audio-every", type=int, default=10, help="a clip + voice query every N images (0: none)"
    )
    parser.add_argument("--timeout", type=float, default=120, help="max recovery per fault")
    parser.add_argument(
        "--faults", help="comma-separated fault names to run (default: all of them)"
    )
    parser.add_argument("--keep-home", action="store_true", help="keep the temporary home")
    add_output_args(parser)
    args = parser.parse_args(argv)
    args.argv = list(argv or [])
    return args


def main(argv: Sequence[str] | None = None) -> None:
    import sys

    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING)
    faults = ALL_FAULTS
    if args.faults:
        wanted = set(args.faults.split(","))
        faults = tuple(f for f in ALL_FAULTS if f.name in wanted)
    machine = machine_info(with_torch=True)
    began = time.monotonic()
    home = Path(tempfile.mkdtemp(prefix="glimpse-chaos-"))
    settings = quick_repair(private_settings(home / "home"))
    settings.worker.max_wait_ms = 50
    try:
        say("cold start …")
        cold = EmbeddedStack(settings, progress=lambda m: None)
        _, cold_timing = timed_start(cold, "cold (fresh home)")
        cold.stop()
        say("warm start …")
        stack = EmbeddedStack(settings, progress=lambda m: None)
        try:
            resolved, warm_timing = timed_start(stack, "warm")
            say(f"up {warm_timing.up_s:.1f}s, all ready {warm_timing.all_ready_s:.1f}s")
            watch = CommitWatch(worker_ports(resolved))
            watch.start()
            load = SteadyLoad(resolved, "chaos/", args.interval, args.audio_every)
            load.start()
            recoveries = ChaosRun(stack, resolved, faults, args.timeout, say).run(watch)
            load.stop()
            say(f"uploads stopped: {len(load.images)} images, {len(load.clips)} clips")
            done = wait_complete(resolved, load.images, load.clips, timeout_s=300)
            watch.stop()
        finally:
            stack.stop()
    finally:
        if not args.keep_home:
            shutil.rmtree(home, ignore_errors=True)
        else:
            say(f"kept {home}")
    markdown = report(
        args,
        machine,
        [cold_timing, warm_timing],
        recoveries,
        load,
        done,
        time.monotonic() - began,
    )
    publish(markdown, args)


if __name__ == "__main__":
    main()
