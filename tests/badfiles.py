"""A generated corpus of bad and good media inputs, with what ``validate_media`` must say.

Everything is built in memory from code (Pillow, pillow-heif, PyAV, zlib, wave), so
no binary fixtures live in the repository. Other tests reuse it:

    for case in bad_files():                 # each: name, data, reason, limits
        with pytest.raises(Rejected) as err:
            validate_media(case.data, case.limits)
        assert err.value.reason is case.reason

    write_corpus(tmp_path)                   # the same files on disk, for upload tests

Generators are cached: the PNG bomb alone costs ~0.6 s to compress.
"""

from __future__ import annotations

import functools
import io
import math
import random
import struct
import wave
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import pillow_heif
from PIL import ExifTags, Image

from glimpse.config import LimitsSettings
from glimpse.media import MediaKind, RejectReason

DEFAULT_LIMITS = LimitsSettings()


@dataclass(frozen=True)
class BadFile:
    name: str  # a plausible upload name; the extension often lies on purpose
    data: bytes
    reason: RejectReason
    message_has: str  # a phrase the human-readable message must contain
    limits: LimitsSettings = field(default_factory=LimitsSettings)


@dataclass(frozen=True)
class GoodFile:
    name: str
    data: bytes
    kind: MediaKind
    mime: str
    width: int | None = None  # as displayed (after EXIF orientation)
    height: int | None = None
    duration_s: float | None = None


# ---------------------------------------------------------------- images


def jpeg(
    width: int = 300,
    height: int = 200,
    *,
    orientation: int | None = None,
    taken: str | None = None,  # EXIF "YYYY:MM:DD HH:MM:SS"
    offset: str | None = None,  # EXIF "+02:00"
    camera: tuple[str, str] | None = None,
    split_colours: bool = False,  # left half red, right half blue: shows rotation
) -> bytes:
    image = Image.new("RGB", (width, height), (200, 30, 30))
    if split_colours:
        image.paste((30, 30, 200), (width // 2, 0, width, height))
    exif = Image.Exif()
    if orientation is not None:
        exif[ExifTags.Base.Orientation] = orientation
    if camera is not None:
        exif[ExifTags.Base.Make], exif[ExifTags.Base.Model] = camera
    if taken is not None:
        exif_ifd = exif.get_ifd(ExifTags.IFD.Exif)
        exif_ifd[ExifTags.Base.DateTimeOriginal] = taken
        if offset is not None:
            exif_ifd[ExifTags.Base.OffsetTimeOriginal] = offset
    return _save(image, "JPEG", exif=exif, quality=90)


@functools.cache
def photo_12mp() -> bytes:
    """A 4000x3000 photo-like JPEG (gradient plus sensor-like noise), ~5.8 MB."""
    rng = np.random.default_rng(12)
    y, x = np.mgrid[0:3000, 0:4000].astype(np.float32)
    base = np.stack([x / 4000 * 255, y / 3000 * 255, (x + y) / 7000 * 255], axis=-1)
    pixels = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
    return _save(Image.fromarray(pixels), "JPEG", quality=90)


def png_rgba(width: int = 64, height: int = 48) -> bytes:
    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))  # fully transparent...
    image.paste((0, 128, 0, 255), (0, 0, width // 2, height))  # ...but the left half
    return _save(image, "PNG")


def png_palette_transparent() -> bytes:
    image = Image.new("P", (40, 30), 0)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.paste(1, (20, 0, 40, 30))
    return _save(image, "PNG", transparency=1)  # the blue half is transparent


def png_grey16() -> bytes:
    return _save(Image.new("I;16", (32, 32), 32768), "PNG")  # mid grey, 16 bit


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (60, 40), colour) for colour in ((255, 0, 0), (0, 255, 0))]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return out.getvalue()


def mpo() -> bytes:
    """A real multi-picture JPEG (MP index in APP2), as stereo cameras write them."""
    first, second = (Image.new("RGB", (120, 80), colour) for colour in ("red", "blue"))
    return _save(first, "MPO", save_all=True, append_images=[second])


def webp() -> bytes:
    return _save(Image.new("RGB", (80, 60), (10, 120, 200)), "WEBP", quality=80)


def heic() -> bytes:
    pillow_heif.register_heif_opener()
    return _save(Image.new("RGB", (96, 64), (200, 200, 20)), "HEIF", quality=60)


def avif() -> bytes:
    return _save(Image.new("RGB", (96, 64), (20, 200, 200)), "AVIF", quality=60)


@functools.cache
def png_bomb(width: int = 40000, height: int = 40000) -> bytes:
    """A 1.6-gigapixel single-colour PNG, ~190 KB: IDAT built with zlib row by row."""
    row = b"\0" * (1 + (width + 7) // 8)  # filter byte + 1-bit greyscale pixels
    deflate = zlib.compressobj(9)
    idat = b"".join(deflate.compress(row) for _ in range(height)) + deflate.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", idat)
        + (_png_chunk(b"IEND", b""))
    )


def zip_archive() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("payload.html", "<script>alert(1)</script>" * 20)
    return out.getvalue()


def _save(image: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body)
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


# ---------------------------------------------------------------- audio


def wav_sine(seconds: float = 2.0, rate: int = 16000) -> bytes:
    """A 440 Hz tone, 16-bit mono, via the standard library only."""
    frames = b"".join(
        struct.pack("<h", int(9000 * math.sin(2 * math.pi * 440 * i / rate)))
        for i in range(int(seconds * rate))
    )
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(frames)
    return out.getvalue()


@functools.cache
def encoded_audio(
    container: str, codec: str, seconds: float = 2.0, rate: int = 48000, layout: str = "mono"
) -> bytes:
    """Encode a tone with PyAV, e.g. ("mp3", "libmp3lame"), ("ogg", "libopus")."""
    options = {"strict": "experimental"} if codec == "vorbis" else {}
    out = io.BytesIO()
    with av.open(out, "w", format=container) as muxer:
        stream = muxer.add_stream(codec, rate=rate, options=options)
        assert isinstance(stream, av.AudioStream)
        stream.layout = layout
        _encode_tone(muxer, stream, seconds, rate, layout)
    return out.getvalue()


@functools.cache
def video(container: str = "mp4", codec: str = "mpeg4", audio_codec: str = "aac") -> bytes:
    """One second of 64x48 video with a sound track: what must be refused as video."""
    out = io.BytesIO()
    with av.open(out, "w", format=container) as muxer:
        picture = muxer.add_stream(codec, rate=10)
        sound = muxer.add_stream(audio_codec, rate=48000)
        assert isinstance(picture, av.VideoStream) and isinstance(sound, av.AudioStream)
        picture.width, picture.height, picture.pix_fmt = 64, 48, "yuv420p"
        sound.layout = "mono"
        for index in range(10):
            pixels = np.full((48, 64, 3), index * 20, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index
            muxer.mux(picture.encode(frame))
        muxer.mux(picture.encode(None))
        _encode_tone(muxer, sound, 1.0, 48000, "mono")
    return out.getvalue()


def mp3_with_cover_art() -> bytes:
    """An MP3 behind an ID3v2.3 tag holding a JPEG cover: FFmpeg shows it as video."""
    cover = jpeg(120, 120)
    body = b"\x00image/jpeg\x00\x03cover\x00" + cover  # encoding, MIME, type, description
    frame = b"APIC" + struct.pack(">I", len(body)) + b"\x00\x00" + body
    size = len(frame)
    syncsafe = bytes((size >> shift) & 0x7F for shift in (21, 14, 7, 0))
    return b"ID3\x03\x00\x00" + syncsafe + frame + encoded_audio("mp3", "libmp3lame")


def _encode_tone(
    muxer: av.container.OutputContainer,
    stream: av.audio.stream.AudioStream,
    seconds: float,
    rate: int,
    layout: str,
) -> None:
    channels = 2 if layout == "stereo" else 1
    samples = int(seconds * rate)
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / rate)).astype(np.float32)
    for start in range(0, samples, 4096):
        chunk = np.repeat(tone[None, start : start + 4096], channels, axis=0)
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
        frame.sample_rate, frame.pts = rate, start
        muxer.mux(stream.encode(frame))  # PyAV resamples to the codec's own format
    muxer.mux(stream.encode(None))


# ---------------------------------------------------------------- the corpus


def _truncate(data: bytes, share: float = 0.5) -> bytes:
    return data[: int(len(data) * share)]


def _random_bytes(count: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(count)


def bad_files() -> list[BadFile]:
    photo = jpeg()
    header = photo[:20]  # SOI + the JFIF APP0 segment
    return [
        BadFile("empty.jpg", b"", RejectReason.EMPTY, "0 bytes"),
        BadFile(
            "big.jpg",
            photo,
            RejectReason.TOO_LARGE,
            "limit is 1 KiB",
            LimitsSettings(max_bytes=1024),
        ),
        BadFile("truncated.jpg", _truncate(photo), RejectReason.UNDECODABLE, "ends early"),
        BadFile("truncated.png", _truncate(png_rgba()), RejectReason.UNDECODABLE, "ends early"),
        BadFile("truncated.gif", _truncate(animated_gif(), 0.3), RejectReason.UNDECODABLE, "GIF"),
        BadFile("truncated.webp", _truncate(webp()), RejectReason.UNDECODABLE, "WebP"),
        BadFile("bomb.png", png_bomb(), RejectReason.TOO_MANY_PIXELS, "40000x40000 = 1600 Mpx"),
        BadFile(
            "big-pixels.jpg",
            jpeg(1200, 1000),
            RejectReason.TOO_MANY_PIXELS,
            "limit is 1 Mpx",
            LimitsSettings(max_pixels=1_000_000),
        ),
        BadFile(
            "jpeg-header-html.jpg",
            header + b"<html><body><script>alert(document.cookie)</script></body></html>",
            RejectReason.UNDECODABLE,
            "not a readable JPEG",
        ),
        BadFile("jpeg-header-zip.jpg", header + zip_archive(), RejectReason.MIME_MISMATCH, "ZIP"),
        BadFile("jpeg-plus-zip.jpg", photo + zip_archive(), RejectReason.MIME_MISMATCH, "ZIP"),
        BadFile(
            "notes.jpg",
            b"Shopping list:\n- milk\n- bread\n" * 20,
            RejectReason.UNSUPPORTED_TYPE,
            "text/plain",
        ),
        BadFile(
            "page.png",
            b"<!DOCTYPE html><html><head><title>x</title></head><body>hi</body></html>\n",
            RejectReason.UNSUPPORTED_TYPE,
            "text/html",
        ),
        BadFile(
            "logo.svg",
            b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" '
            b'height="10"><script>alert(1)</script><rect width="10" height="10"/></svg>\n',
            RejectReason.UNSUPPORTED_TYPE,
            "SVG",
        ),
        BadFile("archive.jpg", zip_archive(), RejectReason.UNSUPPORTED_TYPE, "application/zip"),
        BadFile(
            "scan.bmp",
            _save(Image.new("RGB", (8, 8)), "BMP"),
            RejectReason.UNSUPPORTED_TYPE,
            "image/bmp",
        ),
        BadFile("noise.jpg", _random_bytes(4096), RejectReason.UNSUPPORTED_TYPE, "what kind"),
        BadFile("clip.mp4", video(), RejectReason.UNSUPPORTED_TYPE, "video is not supported"),
        BadFile(
            "clip.webm",
            video("webm", "libvpx", "libopus"),
            RejectReason.UNSUPPORTED_TYPE,
            "video is not supported",
        ),
        BadFile("truncated.wav", _truncate(wav_sine()), RejectReason.UNDECODABLE, "ends early"),
        BadFile(
            "truncated.ogg",
            _truncate(encoded_audio("ogg", "libopus")),
            RejectReason.UNDECODABLE,
            "ends early",
        ),
        BadFile(
            "truncated.flac",
            _truncate(encoded_audio("flac", "flac", rate=16000)),
            RejectReason.UNDECODABLE,
            "ends early",
        ),
        BadFile(
            "truncated.mp3",
            _truncate(encoded_audio("mp3", "libmp3lame", rate=44100)),
            RejectReason.UNDECODABLE,
            "ends early",
        ),
        BadFile(
            "truncated.m4a",
            _truncate(encoded_audio("ipod", "aac", rate=44100)),
            RejectReason.UNDECODABLE,
            "ends early",
        ),
        BadFile(
            "long.wav",
            wav_sine(2.0),
            RejectReason.TOO_LONG,
            "limit is 1.0 s",
            LimitsSettings(max_audio_seconds=1.0),
        ),
    ]


def good_files() -> list[GoodFile]:
    image, audio = MediaKind.IMAGE, MediaKind.AUDIO
    photo = jpeg()
    return [
        GoodFile("photo.jpg", photo, image, "image/jpeg", 300, 200),
        GoodFile(
            "rotated.jpg",
            jpeg(orientation=6, taken="2023:07:14 18:30:05", offset="+02:00"),
            image,
            "image/jpeg",
            200,  # stored 300x200, shown rotated by 90 degrees
            300,
        ),
        GoodFile("alpha.png", png_rgba(), image, "image/png", 64, 48),
        GoodFile("palette.png", png_palette_transparent(), image, "image/png", 40, 30),
        GoodFile("grey16.png", png_grey16(), image, "image/png", 32, 32),
        GoodFile("animated.gif", animated_gif(), image, "image/gif", 60, 40),
        GoodFile("photo.webp", webp(), image, "image/webp", 80, 60),
        GoodFile("photo.heic", heic(), image, "image/heic", 96, 64),
        GoodFile("photo.avif", avif(), image, "image/avif", 96, 64),
        # Real cameras append data after the JPEG end: a motion photo's MP4, a second
        # JPEG (MPO / HDR gain map), padding. All of these are legitimate photos.
        GoodFile("motion.jpg", photo + video(), image, "image/jpeg", 300, 200),
        GoodFile("gain-map.jpg", photo + jpeg(150, 100), image, "image/jpeg", 300, 200),
        GoodFile("stereo.mpo", mpo(), image, "image/jpeg", 120, 80),
        GoodFile("padded.jpg", photo + _random_bytes(3000), image, "image/jpeg", 300, 200),
        GoodFile("voice.wav", wav_sine(2.0), audio, "audio/wav", duration_s=2.0),
        GoodFile(
            "voice.mp3",
            encoded_audio("mp3", "libmp3lame", rate=44100),
            audio,
            "audio/mpeg",
            duration_s=2.0,
        ),
        GoodFile("cover.mp3", mp3_with_cover_art(), audio, "audio/mpeg", duration_s=2.0),
        GoodFile(
            "voice.ogg",
            encoded_audio("ogg", "vorbis", rate=44100, layout="stereo"),
            audio,
            "audio/ogg",
            duration_s=2.0,
        ),
        GoodFile(
            "voice.opus", encoded_audio("opus", "libopus"), audio, "audio/ogg", duration_s=2.0
        ),
        GoodFile(
            "voice.flac",
            encoded_audio("flac", "flac", rate=16000),
            audio,
            "audio/flac",
            duration_s=2.0,
        ),
        GoodFile(
            "voice.m4a",
            encoded_audio("ipod", "aac", rate=44100),
            audio,
            "audio/mp4",
            duration_s=2.0,
        ),
        GoodFile(
            "voice.mp4",
            encoded_audio("mp4", "aac", rate=44100),
            audio,
            "audio/mp4",
            duration_s=2.0,
        ),
        GoodFile(
            "voice.webm", encoded_audio("webm", "libopus"), audio, "audio/webm", duration_s=2.0
        ),
    ]


def write_corpus(directory: Path) -> list[tuple[Path, BadFile | GoodFile]]:
    """Write every case under ``directory/bad`` and ``directory/good``; return (path, case)."""
    written: list[tuple[Path, BadFile | GoodFile]] = []
    groups: Sequence[tuple[str, Sequence[BadFile | GoodFile]]] = (
        ("bad", bad_files()),
        ("good", good_files()),
    )
    for group, cases in groups:
        (directory / group).mkdir(parents=True, exist_ok=True)
        for case in cases:
            path = directory / group / case.name
            path.write_bytes(case.data)
            written.append((path, case))
    return written
