"""Reading image-caption pairs: CSV and JSONL, several captions per image, images from
files or the bucket, and mistakes said with the line or image at fault."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from caption_shapes import draw
from PIL import Image

from glimpse.caption_pairs import PairsError, load_images, read_pairs


def write_png(path: Path, colour: str = "red", shape: str = "circle") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    draw(colour, shape, 0).resize((900, 900)).save(path)


def test_csv_rows_of_one_image_are_gathered_and_blank_ones_skipped(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(
        "image,caption\n"
        "shop/tart.jpg,A lemon tart on a plate\n"
        'shop/tart.jpg,"a tart, with lemon"\n'
        "shop/bun.jpg,a cinnamon bun\n"
        "shop/bun.jpg,\n"
    )
    read = read_pairs(pairs)
    assert read.captions == {
        "shop/tart.jpg": ["A lemon tart on a plate", "a tart, with lemon"],
        "shop/bun.jpg": ["a cinnamon bun"],
    }
    assert read.base == tmp_path


def test_jsonl_takes_one_caption_or_a_list(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        '{"image": "a.png", "caption": "a red circle"}\n\n'
        '{"image": "a.png", "captions": ["one red circle", "a round red shape"]}\n'
    )
    assert read_pairs(pairs).captions == {
        "a.png": ["a red circle", "one red circle", "a round red shape"]
    }


def test_mistakes_name_the_file_line_or_image(tmp_path: Path) -> None:
    with pytest.raises(PairsError, match="no such file"):
        read_pairs(tmp_path / "nothing.csv")
    bad_header = tmp_path / "bad.csv"
    bad_header.write_text("path,text\na.png,a cat\n")
    with pytest.raises(PairsError, match="image,caption"):
        read_pairs(bad_header)
    bad_line = tmp_path / "bad.jsonl"
    bad_line.write_text('{"image": "a.png", "caption": "x"}\n{"image": "b.png"}\n')
    with pytest.raises(PairsError, match=r"bad.jsonl:2"):
        read_pairs(bad_line)
    empty = tmp_path / "empty.csv"
    empty.write_text("image,caption\n")
    with pytest.raises(PairsError, match="no image with a caption"):
        read_pairs(empty)


def test_images_are_read_as_the_caption_stage_sees_them(tmp_path: Path) -> None:
    write_png(tmp_path / "photos" / "red.png")
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("image,caption\nphotos/red.png,a red circle\n")
    [image] = load_images(read_pairs(pairs), 512).values()
    assert image.mode == "RGB" and max(image.size) == 512  # ingest's thumbnail size
    assert image.getpixel((256, 256))[0] > 200  # still red in the middle


def test_an_image_that_is_no_file_is_asked_of_the_bucket(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    draw("blue", "square", 0).save(buffer, "PNG")
    bucket = {"uploads/blue.png": buffer.getvalue()}
    asked: list[str] = []

    def read_key(key: str, max_bytes: int) -> bytes | None:
        asked.append(key)
        return bucket.get(key)

    pairs = tmp_path / "pairs.csv"
    pairs.write_text("image,caption\nuploads/blue.png,a blue square\n")
    images = load_images(read_pairs(pairs), 512, read_key)
    assert asked == ["uploads/blue.png"]
    assert isinstance(images["uploads/blue.png"], Image.Image)
    pairs.write_text("image,caption\nuploads/gone.png,a blue square\n")
    with pytest.raises(PairsError, match="nor in the bucket"):
        load_images(read_pairs(pairs), 512, read_key)
    with pytest.raises(PairsError, match="no bucket to ask"):
        load_images(read_pairs(pairs), 512)


def test_a_file_that_is_no_image_is_named(tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_text("not an image")
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("image,caption\nnotes.png,a note\n")
    with pytest.raises(PairsError, match=r"notes\.png: not a readable image"):
        load_images(read_pairs(pairs), 512)
