"""kill -9 under steady uploads, short version (`make chaos` runs every fault).

Each image-pipeline worker, Postgres, the broker and the media store are killed in
turn, then Postgres + broker + media store together, while an image is uploaded
every 0.3 s. The pipeline must commit again after each kill, and at the end every
image must be complete: one accepted media row, one caption, one text and one visual
vector per active model. A message the broker loses in a kill is stage repair's to
find (glimpse.backfill.repair), so repair runs often here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import RunningStack, private_settings

from bench.common.chaos import (
    SHORT_FAULTS,
    ChaosRun,
    CommitWatch,
    SteadyLoad,
    during,
    quick_repair,
    wait_complete,
    worker_ports,
)

pytestmark = pytest.mark.integration

#: generous on a shared 2-core machine; `make chaos` records the real numbers (goal 15 s)
RECOVERY_BOUND_S = 60.0


def test_every_kill_recovers_and_every_upload_ends_complete(tmp_path: Path) -> None:
    settings = quick_repair(private_settings(tmp_path / "home"))
    # the broker's retention deletes what every group has read, through every kill
    settings.stack.broker_retention_interval_s = 5.0
    running = RunningStack(settings)
    try:
        s = running.settings
        watch = CommitWatch(worker_ports(s))
        watch.start()
        load = SteadyLoad(s, "chaos/", interval_s=0.3)
        load.start()
        try:
            recoveries = ChaosRun(running.stack, s, SHORT_FAULTS, timeout_s=90).run(watch)
        finally:
            load.stop()
        done = wait_complete(s, load.images, load.clips, timeout_s=180)
        watch.stop()
    finally:
        running.close()

    seconds = {r.fault.name: r.seconds for r in recoveries}
    print("recovery seconds per fault:", seconds)
    assert all(v is not None and v <= RECOVERY_BOUND_S for v in seconds.values()), seconds
    assert len(load.images) > 100
    assert done.problems == [], [
        f"{problem} (uploaded {during(recoveries, load.uploaded_at[problem.split(':')[0]])})"
        for problem in done.problems
    ]
    assert done.images_complete == len(load.images)
    assert sum(p.deleted for p in running.stack.retention_passes) > 0
