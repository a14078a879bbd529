"""`glimpse captioner train` as a user runs it: pairs in, per-epoch BLEU out, an artifact
in the model cache that the trained backend loads by its id."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from caption_shapes import draw, write_pairs

from glimpse.config import ModelSettings
from glimpse.models import load_captioner
from glimpse.models.caption_artifact import FILES

REPO = Path(__file__).resolve().parents[2]


def glimpse(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "GLIMPSE_HOME": str(home),
        "GLIMPSE_MODELS__TORCH_THREADS": "1",
        "COLUMNS": "200",
        "PYTHONPATH": str(REPO),
    }
    return subprocess.run([sys.executable, "-m", "glimpse.cli", *args], env=env, cwd=home,
                          capture_output=True, text=True, timeout=600, check=False)  # fmt: skip


def test_train_saves_a_versioned_artifact_the_backend_loads_by_id(tmp_path: Path) -> None:
    pairs = write_pairs(tmp_path / "data", variants=2)
    trained = glimpse(tmp_path, "captioner", "train", "--pairs", str(pairs), "--name", "shapes",
                      "--epochs", "6", "--seed", "3")  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    artifact_id = trained.stdout.strip()
    assert artifact_id.startswith("shapes-")
    assert "val BLEU-4" in trained.stderr and "best epoch" in trained.stderr
    assert f"GLIMPSE_MODELS__TRAINED_CAPTIONER={artifact_id}" in trained.stderr
    directory = tmp_path / "models" / "captioners" / artifact_id
    assert sorted(p.name for p in directory.iterdir()) == sorted(FILES)
    metrics = json.loads((directory / "metrics.json").read_text())
    assert 1 <= len(metrics["epochs"]) <= 6
    assert metrics["train_images"] + metrics["validation_images"] == 24

    # the same pairs, settings and seed make the same model: the same id
    again = glimpse(tmp_path, "captioner", "train", "--pairs", str(pairs), "--name", "shapes",
                    "--epochs", "6", "--seed", "3")  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == artifact_id

    captioner = load_captioner(
        ModelSettings(captioner="trained", trained_captioner=artifact_id, device="cpu"),
        home=tmp_path,
    )
    assert captioner.model_id == f"trained/{artifact_id}"
    captioner.load()
    [analysis] = captioner.predict([draw("red", "circle", 77)])
    assert analysis.caption and analysis.labels


def test_mistakes_are_said_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "pairs.csv"
    bad.write_text("path,text\na.png,a cat\n")
    refused = glimpse(tmp_path, "captioner", "train", "--pairs", str(bad))
    assert refused.returncode != 0
    assert "image,caption" in refused.stderr and "Traceback" not in refused.stderr
    named = glimpse(tmp_path, "captioner", "train", "--pairs", str(bad), "--name", "Bad Name")
    assert named.returncode != 0 and "lower-case letters" in named.stderr
