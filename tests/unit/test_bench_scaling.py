"""bench/scaling.py's reading of a run: which stage bounds it, and when the machine's
load was someone else's."""

from __future__ import annotations

import pytest

from bench.scaling import STAGES, Run, StageNumbers, parse_args, verdict


def run(busy_s: dict[str, float], machine: float, own: float) -> Run:
    """Two processes per stage over a 10 s window, the stages inside batches as given."""
    stages = {
        stage: StageNumbers(
            done_s=5.0, batch_s=busy_s[stage], model_s=busy_s[stage] / 2, messages=40, cpu_s=3
        )
        for stage in STAGES
    }
    servers = {"Postgres": 1.0, "S3 media store": 2.5}
    return Run(2, 1, 60.0, 10.0, 40, 0, stages, servers, busy=machine, own=own)


def test_the_stage_whose_processes_were_busiest_bounds_the_run() -> None:
    measured = run({"ingest": 6.0, "caption": 19.0, "embed": 9.0}, machine=0.95, own=0.9)
    assert measured.bottleneck == "caption"
    said = verdict(measured)
    assert "bound by **caption**" in said and "95 %" in said
    assert "**CPU-saturated**" in said
    assert "S3 media store: 25 % of one core" in said


def test_a_machine_busy_with_other_work_is_said_so_not_taken_for_saturation() -> None:
    said = verdict(run({"ingest": 6.0, "caption": 8.0, "embed": 9.0}, machine=1.0, own=0.3))
    assert "busy with other work" in said and "30 % by this run" in said
    assert "CPU-saturated" not in said


def test_more_replicas_than_partitions_is_refused() -> None:
    with pytest.raises(SystemExit):
        parse_args(["--replicas", "1,2,4", "--partitions", "3"])
    assert parse_args(["--replicas", "1,2"]).partitions == 8
