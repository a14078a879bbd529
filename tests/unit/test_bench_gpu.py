"""bench/gpu.py's quick CPU path: every stage measured through the services' loaders,
the device read back from the model-info metric, and a CUDA request that falls back to
the CPU stopping the run instead of passing for GPU numbers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench.gpu import FellBackToCpu, main


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GLIMPSE_HOME", str(tmp_path / "home"))
    return tmp_path


def test_a_cpu_run_records_each_stage_on_the_device_the_model_reports(home: Path) -> None:
    results = home / "RESULTS.md"
    quick = ["--batch-sizes", "1,2", "--seconds", "0.05", "--images", "2", "--clips", "3 s"]
    main(["--device", "cpu", *quick, "--results", str(results)])
    rows = [line for line in results.read_text().splitlines() if line.startswith("| ")]
    measured = {(cells[1].strip(), cells[4].strip()) for cells in (r.split("|") for r in rows[1:])}
    assert measured == {
        ("caption", "1 images"),
        ("caption", "2 images"),
        ("embed", "1 texts"),
        ("embed", "2 texts"),
        ("transcribe", "one 3 s clip"),
    }
    assert all(row.split("|")[3].strip() == "cpu" for row in rows[1:])


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is there: nothing falls back")
def test_cuda_asked_on_a_machine_without_a_gpu_stops_at_the_first_model(home: Path) -> None:
    with pytest.raises(FellBackToCpu, match='device="cpu"'):
        main(["--device", "cuda", "--images", "1", "--results", str(home / "RESULTS.md")])
    assert not (home / "RESULTS.md").exists()


def test_saved_inputs_let_one_stage_run_where_ingest_could_not(home: Path) -> None:
    """A GPU machine without libmagic or PyAV gets the thumbnails and captions made here;
    only the stages asked for run there."""
    inputs = home / "inputs"
    main(["--save-inputs", str(inputs), "--images", "3"])
    assert len(list((inputs / "thumbnails").glob("*.jpg"))) == 3

    results = home / "RESULTS.md"
    quick = ["--batch-sizes", "2", "--seconds", "0.05", "--stages", "embed"]
    main(["--device", "cpu", "--inputs", str(inputs), *quick, "--results", str(results)])
    rows = [line for line in results.read_text().splitlines() if line.startswith("| ")]
    assert [r.split("|")[1].strip() for r in rows[1:]] == ["embed"]


def test_an_unknown_stage_is_refused_before_any_model_loads(home: Path) -> None:
    with pytest.raises(SystemExit, match="unknown ocr"):
        main(["--device", "cpu", "--stages", "caption,ocr", "--no-record"])
