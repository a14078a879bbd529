"""Training examples from label folders get the vectors the pipeline would give the same
files (ingest's thumbnail, the caption stage's decode, the captioner); what ingest would
reject is skipped and said. CSV files of key,label are read strictly."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from models_fixtures import PHOTOS, samples_dir
from PIL import Image

from glimpse.config import LimitsSettings, ModelSettings
from glimpse.labels.examples import folder_files, from_folder, read_pairs
from glimpse.media import validate_media
from glimpse.media.thumbnail import decode_thumbnail
from glimpse.models import Captioner, load_captioner


@pytest.fixture(scope="module")
def captioner() -> Captioner:
    model = load_captioner(ModelSettings())
    model.load()
    return model


def test_label_folders_give_pipeline_vectors_and_skip_what_ingest_rejects(
    captioner: Captioner, tmp_path: Path
) -> None:
    cat = (samples_dir() / PHOTOS["cat"]).read_bytes()
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "chelsea.png").write_bytes(cat)
    (tmp_path / "cat" / ".DS_Store").write_bytes(b"\0")  # hidden: not an example
    (tmp_path / "plain").mkdir()
    out = io.BytesIO()
    Image.new("RGB", (300, 200), "white").save(out, "PNG")
    (tmp_path / "plain" / "white.png").write_bytes(out.getvalue())
    (tmp_path / "plain" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")

    gathered = from_folder(tmp_path, captioner, LimitsSettings())

    assert gathered.labels == ["cat", "plain"]
    assert [Path(s).name for s in gathered.sources] == ["chelsea.png", "white.png"]
    assert [(Path(what).name, why.split(":")[0]) for what, why in gathered.skipped] == [
        ("broken.jpg", "undecodable")
    ]
    thumbnail = validate_media(cat, LimitsSettings()).thumbnail
    assert thumbnail is not None
    [analysis] = captioner.predict([decode_thumbnail(thumbnail)])
    assert np.array_equal(gathered.vectors[0], analysis.visual)
    examples = gathered.examples()
    assert examples.vectors.shape == (2, 1280)


def test_a_folder_without_label_folders_gives_nothing(tmp_path: Path) -> None:
    (tmp_path / "loose.png").write_bytes(b"")

    assert folder_files(tmp_path) == []
    with pytest.raises(FileNotFoundError):
        folder_files(tmp_path / "absent")


def test_pairs_are_read_with_or_without_a_header(tmp_path: Path) -> None:
    csv = tmp_path / "labels.csv"
    csv.write_text("key,label\n2024/a.jpg, croissant\n\n2024/b,c.jpg,eclair\n")
    with pytest.raises(ValueError, match=r"labels\.csv:4"):
        read_pairs(csv)

    csv.write_text('2024/a.jpg,croissant\n"2024/b,c.jpg",eclair\n')
    assert read_pairs(csv) == [("2024/a.jpg", "croissant"), ("2024/b,c.jpg", "eclair")]
