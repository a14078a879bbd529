"""Memory benchmark: peak RSS of ingest's image decoding and of transcription.

    python -m bench.memory [--images 10] [--minutes 5,20] [--whole-minutes 2] [--no-record]

Each measurement runs in a fresh child process, so one cannot inflate another's peak;
the child reports its RSS once ready (imports done, inputs read, model loaded and warmed
up) and its peak RSS (``VmHWM``) at the end.

1. **Ingest**: ``--images`` distinct 10000x10000 (100-MP, the default pixel limit)
   progressive JPEGs through ``validate_media`` on ingest's thread pool (4 threads, as
   ``worker.concurrency``), with the decode budget (``ingest.decode_budget_megapixels``,
   default 150) and without one (every thread decoding at once, as before the budget);
   with ``glimpse.malloc.release_large_frees`` as the worker calls it, and without.
2. **Transcribe**: espeak-ng speech repeated to ``--minutes`` long Ogg/Opus voice notes,
   through ``Transcriber.transcribe`` from a file path as the worker does (5-minute
   windows), and for comparison the whole file in one window (``--whole-minutes``, as
   before). Beam 1 and English configured, to keep the run short: memory is what is
   measured; bench.whisper measures speed.

Prints Markdown and appends it, dated, to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from bench.common.quiet import OtherLoad
from bench.common.report import (
    REPO,
    add_output_args,
    machine_info,
    publish,
    report_header,
    say,
    table,
)
from glimpse.malloc import release_large_frees
from glimpse.models.speech import WINDOW_SECONDS

SIDE = 10_000  # 100 MP
THREADS = 4
SPEECH = (
    "Notes from the garden this morning. The tomatoes are finally turning red, but the "
    "leaves on the lower branches have brown spots, so I cut them off. The beans need a "
    "taller frame before next week, and the birds have started eating the cherries again."
)


@dataclass(frozen=True, slots=True)
class Peak:
    label: str
    ready_mib: float  # RSS once inputs and models are loaded
    peak_mib: float  # VmHWM at the end
    seconds: float
    note: str = ""

    @property
    def growth_mib(self) -> float:
        return self.peak_mib - self.ready_mib


# --- children: one workload each, in a fresh process ---------------------------------


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise LookupError(field)


def rss_mib() -> float:
    return _status_mib("VmRSS")


def peak_mib() -> float:
    # VmHWM, not ru_maxrss: the latter keeps the parent's peak across fork + exec
    return _status_mib("VmHWM")


def child_ingest(files: list[Path], budget_mp: float | None, release: bool) -> dict[str, float]:
    if release:
        release_large_frees()  # as services.ingest does at start
    from glimpse.config import LimitsSettings
    from glimpse.media import validate_media
    from glimpse.media.budget import DecodeBudget, unlimited

    limits = LimitsSettings()
    data = [f.read_bytes() for f in files]
    admit = unlimited if budget_mp is None else DecodeBudget(round(budget_mp * 1e6)).admit
    validate_media(_small_jpeg(), limits)  # libmagic and Pillow's plugins load on first use
    ready = rss_mib()
    started = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(lambda d: validate_media(d, limits, admit), data))
    assert all(r.width == SIDE for r in results)
    return {"ready": ready, "peak": peak_mib(), "seconds": time.perf_counter() - started}


def _small_jpeg() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 64), "gray").save(out, "JPEG")
    return out.getvalue()


def child_transcribe(audio: Path, window_s: float, models: Path) -> dict[str, float]:
    release_large_frees()  # as services.transcribe does at start
    from glimpse.config import ModelSettings
    from glimpse.models.speech import load_transcriber

    settings = ModelSettings(
        cache_dir=models, device="cpu", whisper_beam_size=1, whisper_language="en"
    )
    transcriber = load_transcriber(settings)
    transcriber.load()
    warmup = audio.with_name("warmup.ogg")
    transcriber.transcribe(warmup, max_seconds=60)
    ready = rss_mib()
    started = time.perf_counter()
    found = transcriber.transcribe(audio, max_seconds=4 * 3600, window_s=window_s)
    return {
        "ready": ready,
        "peak": peak_mib(),
        "seconds": time.perf_counter() - started,
        "audio_s": found.duration_s,
        "words": len(found.text.split()),
    }


# --- inputs --------------------------------------------------------------------------


def make_images(folder: Path, count: int) -> list[Path]:
    """``count`` distinct 100-MP progressive JPEGs (a smooth picture with some texture)."""
    from PIL import Image

    y, x = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32) / SIDE
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 24, (SIDE // 8, SIDE // 8, 3), dtype=np.uint8)
    base = np.stack([x * 200, y * 200, (x + y) * 100], axis=-1).astype(np.uint8)
    base += np.kron(texture, np.ones((8, 8, 1), dtype=np.uint8))
    paths = []
    for i in range(count):
        base[i * 10 : i * 10 + 10, :, :] = 255  # a different stripe in each
        path = folder / f"big-{i}.jpg"
        Image.fromarray(base).save(path, "JPEG", quality=85, progressive=True)
        paths.append(path)
    return paths


def make_speech(folder: Path, minutes: list[float]) -> dict[float, Path]:
    """Ogg/Opus voice notes of each length in ``minutes``: one spoken paragraph, repeated."""
    sys.path.insert(0, str(REPO / "tests"))
    from speech_clips import encode, speak, write_wav

    clip = speak(SPEECH, folder / "paragraph.wav")
    with av.open(str(clip)) as source:
        rate = source.streams.audio[0].rate
        pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in source.decode(audio=0)])
    samples = np.concatenate([pcm.astype(np.float32) / 32767, np.zeros(rate // 2, np.float32)])
    encode(write_wav(folder / "warmup.wav", samples, rate), "ogg")
    out = {}
    for length in minutes:
        repeats = int(np.ceil(length * 60 * rate / len(samples)))
        wav = write_wav(folder / f"speech-{length:g}min.wav", np.tile(samples, repeats), rate)
        out[length] = encode(wav, "ogg")
        wav.unlink()
    return out


# --- parent --------------------------------------------------------------------------


def run_child(args: list[str]) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.memory", *args],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def bench_ingest(folder: Path, count: int, budget_mp: float) -> list[Peak]:
    say(f"making {count} 100-MP progressive JPEGs …")
    files = [str(p) for p in make_images(folder, count)]
    peaks = []
    for budget, release in ((budget_mp, True), (budget_mp, False), (None, False)):
        label = f"budget {budget:g} MP" if budget else f"no budget ({THREADS} threads at once)"
        label += ", large frees returned" if release else ", glibc's default malloc"
        say(f"ingest decoding, {label} …")
        r = run_child(["child-ingest", str(budget or 0), str(int(release)), *files])
        peaks.append(Peak(label, r["ready"], r["peak"], r["seconds"]))
    return peaks


def bench_transcribe(
    folder: Path, models: Path, minutes: list[float], whole: list[float]
) -> list[Peak]:
    say("making speech …")
    clips = make_speech(folder, sorted(set(minutes) | set(whole)))
    runs = [(m, WINDOW_SECONDS) for m in minutes] + [(m, 1e9) for m in whole]
    peaks = []
    for length, window in runs:
        label = f"{length:g} min, " + (
            f"{WINDOW_SECONDS / 60:g}-min windows" if window < 1e9 else "whole file at once"
        )
        say(f"transcribing {label} …")
        r = run_child(["child-transcribe", str(clips[length]), str(window), str(models)])
        note = f"{r['audio_s'] / 60:.1f} min of audio, {int(r['words']):,} words"
        peaks.append(Peak(label, r["ready"], r["peak"], r["seconds"], note))
    return peaks


def report(
    args: argparse.Namespace,
    machine: dict[str, str],
    ingest: list[Peak],
    speech: list[Peak],
    total_s: float,
) -> str:
    def rows(peaks: list[Peak], per_s: bool) -> list[list[str]]:
        return [
            [
                p.label,
                f"{p.ready_mib:,.0f} MiB",
                f"{p.peak_mib:,.0f} MiB",
                f"{p.growth_mib:+,.0f} MiB",
                f"{p.seconds:,.1f} s",
                *([p.note] if per_s else []),
            ]
            for p in peaks
        ]

    out = report_header("Memory benchmark", machine)
    out += [
        f"- **command**: `python -m bench.memory {' '.join(args.argv)}`"
        f" ({total_s / 60:.1f} min in all)",
        "",
        f"### Ingest: {args.images} x 100-MP progressive JPEGs, {THREADS} threads",
        "",
        table(["decodes admitted", "RSS ready", "peak RSS", "growth", "wall"], rows(ingest, False)),
        "",
        "### Transcribe (whisper base int8, beam 1, English, from a file path)",
        "",
        table(["audio", "RSS ready", "peak RSS", "growth", "wall", "heard"], rows(speech, True)),
        "",
    ]
    return "\n".join(out)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    def floats(text: str) -> list[float]:
        return [float(x) for x in text.split(",") if x]

    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__)
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--budget-mp", type=float, default=150.0)
    parser.add_argument("--minutes", type=floats, default=[5.0, 20.0], help="windowed runs")
    parser.add_argument(
        "--whole-minutes",
        type=floats,
        default=[2.0],
        help="runs with the whole file in one window, as before",
    )
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--skip-transcribe", action="store_true")
    add_output_args(parser)
    args = parser.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    return args


def main(argv: Sequence[str] | None = None) -> None:
    raw = list(argv if argv is not None else sys.argv[1:])
    if raw and raw[0] == "child-ingest":  # budget (0: none), release (0/1), files
        budget, release = float(raw[1]) or None, raw[2] == "1"
        print(json.dumps(child_ingest([Path(f) for f in raw[3:]], budget, release)))
        return
    if raw and raw[0] == "child-transcribe":
        print(json.dumps(child_transcribe(Path(raw[1]), float(raw[2]), Path(raw[3]))))
        return
    args = parse_args(raw)
    started = time.perf_counter()
    machine = machine_info(with_torch=True)
    ingest: list[Peak] = []
    speech: list[Peak] = []
    with tempfile.TemporaryDirectory(prefix="glimpse-bench-memory-") as tmp, OtherLoad() as others:
        folder = Path(tmp)
        if not args.skip_ingest:
            ingest = bench_ingest(folder, args.images, args.budget_mp)
            for path in folder.glob("big-*.jpg"):
                path.unlink()
        if not args.skip_transcribe:
            speech = bench_transcribe(folder, folder / "models", args.minutes, args.whole_minutes)
    machine["during the run"] = (
        f"other processes used {others.share:.0%} of the machine's CPU (sampled every 2 s)"
    )
    publish(report(args, machine, ingest, speech, time.perf_counter() - started), args)


if __name__ == "__main__":
    main()
