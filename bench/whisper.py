"""Speech benchmark: whisper base (int8, CTranslate2) on the CPU through ``Transcriber``.

    python -m bench.whisper [--rounds 2] [--threads 2,1] [--beams 1,5] [--no-record]

1. Assembly of the offline model from its two wheels into a fresh cache directory
   (cold), and the cheap "already there" check that every later start pays (warm).
2. Model load time (``Transcriber.load()``: CTranslate2 reads model.bin and quantises
   it to int8, plus the revision hash), per configuration.
3. Real-time factor (transcribe wall time / audio duration; goal ≤ 0.3) on espeak-ng
   clips of about 3, 10 and 30 s, encoded as Ogg/Opus like voice notes, so decoding
   and resampling are included: per ``cpu_threads`` and beam size, and with the
   language configured rather than detected (``--language``), best of the rounds,
   with the word error rate against the text espeak spoke (espeak is robotic: the WER
   compares settings, it does not measure whisper on people).

Waits for a quiet machine first (1-minute load average below ``--max-load``). Prints
Markdown and appends it, dated, to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import logging
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.common.quiet import OtherLoad, wait_for_idle_cpus, wait_for_low_load
from bench.common.report import (
    add_output_args,
    machine_info,
    publish,
    report_header,
    say,
    table,
)
from bench.common.speech import spoken_ogg
from glimpse.models.speech import Transcriber, decode_speech
from glimpse.models.whisper_assets import ensure_whisper_base

GOAL_RTF = 0.3
MAX_SECONDS = 120.0
# Voice-note-like texts; espeak at 150 words/min makes them about 3, 10 and 30 s long.
TEXTS = {
    "short": "Show me the photos of my dog playing on the beach.",
    "medium": (
        "Remind me to buy milk, eggs and bread on the way home tonight, and to call my "
        "sister about the birthday party on Saturday afternoon."
    ),
    "long": (
        "Notes from the garden this morning. The tomatoes are finally turning red, but "
        "the leaves on the lower branches have brown spots, so I cut them off and put "
        "them in the bin rather than the compost. The beans need a taller frame before "
        "next week. The apple tree by the fence has more fruit than last year, and the "
        "birds have started eating the cherries again, so we should put the net back up "
        "before the weekend. Water everything on Thursday if it does not rain."
    ),
}


@dataclass(frozen=True, slots=True)
class Clip:
    name: str
    text: str
    data: bytes  # Ogg/Opus
    seconds: float


@dataclass(frozen=True, slots=True)
class Config:
    threads: int
    beam: int
    language: str | None = None  # None: detected, which costs one more encoder pass

    @property
    def label(self) -> str:
        threads = f"{self.threads} thread{'s' if self.threads > 1 else ''}"
        return f"{threads}, beam {self.beam}, {self.language or 'detect'}"


@dataclass(frozen=True, slots=True)
class Timing:
    clip: Clip
    config: Config
    wall_s: float  # best of the rounds
    wer: float
    transcript: str

    @property
    def rtf(self) -> float:
        return self.wall_s / self.clip.seconds


def make_clips(folder: Path) -> list[Clip]:
    clips = []
    for name, text in TEXTS.items():
        data, seconds = spoken_ogg(text, folder, name)
        clips.append(Clip(name, text, data, seconds))
    return clips


def words(text: str) -> list[str]:
    return re.sub(r"[^\w\s']", " ", text.lower()).split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level edit distance over the reference's length."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, word in enumerate(ref, start=1):
        diagonal, row[0] = row[0], i
        for j, heard in enumerate(hyp, start=1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (word != heard))
    return row[-1] / max(len(ref), 1)


def bench_assembly(folder: Path) -> tuple[float, float]:
    """Seconds to assemble into an empty cache, and to find it assembled afterwards."""
    started = time.perf_counter()
    ensure_whisper_base(folder)
    cold = time.perf_counter() - started
    started = time.perf_counter()
    ensure_whisper_base(folder)
    return cold, time.perf_counter() - started


def load(config: Config, cache_root: Path) -> tuple[Transcriber, float]:
    model = Transcriber(
        "",
        language=config.language,
        beam_size=config.beam,
        device="cpu",
        cache_root=cache_root,
        hub_cache=None,
        cpu_threads=config.threads,
    )
    started = time.perf_counter()
    model.load()
    return model, time.perf_counter() - started


def bench_transcription(
    models: dict[Config, Transcriber], clips: Sequence[Clip], rounds: int
) -> list[Timing]:
    for model in models.values():
        model.transcribe(clips[0].data, max_seconds=MAX_SECONDS)  # warm-up: first run allocates
    times: dict[tuple[Config, str], list[float]] = {}
    texts: dict[tuple[Config, str], str] = {}
    for round_ in range(rounds):
        # configurations alternate within a round, so drift hits all alike
        for config, model in models.items():
            for clip in clips:
                started = time.perf_counter()
                found = model.transcribe(clip.data, max_seconds=MAX_SECONDS)
                times.setdefault((config, clip.name), []).append(time.perf_counter() - started)
                texts[(config, clip.name)] = found.text
            say(f"  round {round_ + 1}: {config.label} done")
    return [
        Timing(
            clip,
            config,
            min(times[(config, clip.name)]),
            word_error_rate(clip.text, texts[(config, clip.name)]),
            texts[(config, clip.name)],
        )
        for config in models
        for clip in clips
    ]


def decode_ms(clips: Sequence[Clip]) -> dict[str, float]:
    """Decoding + resampling alone (Ogg/Opus to 16 kHz mono), best of 5, per clip."""
    result = {}
    for clip in clips:
        best = np.inf
        for _ in range(5):
            started = time.perf_counter()
            decode_speech(clip.data, max_seconds=MAX_SECONDS)
            best = min(best, time.perf_counter() - started)
        result[clip.name] = best * 1000
    return result


def report(
    args: argparse.Namespace,
    machine: dict[str, str],
    assembly: tuple[float, float],
    loads: dict[Config, float],
    timings: list[Timing],
    decoding: dict[str, float],
    total_s: float,
) -> str:
    out = report_header("Whisper benchmark", machine)
    out += [f"- **command**: `python -m bench.whisper` ({total_s / 60:.1f} min in all)", ""]
    cold, warm = assembly
    out += [
        f"Offline model (whisper base, CTranslate2, 145 MB model.bin from two wheels): "
        f"assembly into an empty cache **{cold:.2f} s** (join + sha256 + copy); the check "
        f"at every later start {warm * 1000:.1f} ms. `Transcriber.load()` (int8): "
        + ", ".join(f"{c.label} {s:.2f} s" for c, s in loads.items())
        + ".",
        "",
    ]
    rows = [
        [
            t.clip.name,
            f"{t.clip.seconds:.1f}",
            t.config.label,
            f"{t.wall_s:.2f}",
            f"{t.rtf:.3f}" + ("" if t.rtf <= GOAL_RTF else " (**> goal**)"),
            f"{t.wer:.0%}",
        ]
        for t in sorted(
            timings,
            key=lambda t: (
                t.clip.seconds,
                -t.config.threads,
                t.config.beam,
                t.config.language or "",
            ),
        )
    ]
    out += [
        f"Transcription through `Transcriber.transcribe` (Ogg/Opus bytes in: decoding, VAD, "
        f"language detection included), espeak-ng clips, best of {args.rounds} rounds; "
        f"goal RTF ≤ {GOAL_RTF}:",
        "",
        table(["clip", "audio s", "cpu_threads, beam, language", "wall s", "RTF", "WER"], rows),
        "",
        "Decoding alone (PyAV, Ogg/Opus → 16 kHz mono float32): "
        + ", ".join(f"{name} {ms:.1f} ms" for name, ms in decoding.items())
        + ".",
        "",
        "Transcripts (first configuration):",
        "",
    ]
    first = timings[0].config
    out += [f"- {t.clip.name}: {t.transcript}" for t in timings if t.config == first]
    return "\n".join(out) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.whisper", description=(__doc__ or "").split("\n")[0]
    )

    def ints(text: str) -> list[int]:
        return [int(x) for x in text.split(",") if x]

    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=ints, default=[2, 1], help="cpu_threads values")
    parser.add_argument("--beams", type=ints, default=[1, 5], help="beam sizes")
    parser.add_argument(
        "--language",
        default="en",
        help="also run the first --threads value with this language configured ('' to skip)",
    )
    parser.add_argument("--max-load", type=float, default=1.5, help="quiet: 1-min load avg")
    parser.add_argument("--quiet-timeout", type=float, default=240.0, help="seconds")
    add_output_args(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    import ctranslate2
    import faster_whisper

    quiet = wait_for_low_load(args.max_load, args.quiet_timeout)
    started = time.perf_counter()
    machine = machine_info(
        {"faster-whisper": faster_whisper.__version__, "ctranslate2": ctranslate2.__version__},
        with_torch=True,
    )
    machine["quiet"] = quiet
    with tempfile.TemporaryDirectory(prefix="glimpse-bench-whisper-") as tmp, OtherLoad() as others:
        folder = Path(tmp)
        say("assembling whisper base into an empty cache …")
        assembly = bench_assembly(folder / "models")
        clips = make_clips(folder / "clips")
        say("clips: " + ", ".join(f"{c.name} {c.seconds:.1f} s" for c in clips))
        configs = [Config(threads, beam) for threads in args.threads for beam in args.beams]
        if args.language:
            configs += [Config(args.threads[0], beam, args.language) for beam in args.beams]
        models: dict[Config, Transcriber] = {}
        loads: dict[Config, float] = {}
        for config in configs:
            models[config], loads[config] = load(config, folder / "models")
        machine["before timing"] = wait_for_idle_cpus("transcription", timeout_s=args.quiet_timeout)
        timings = bench_transcription(models, clips, args.rounds)
        decoding = decode_ms(clips)
    machine["during the run"] = (
        f"other processes used {others.share:.0%} of the machine's CPU (sampled every 2 s)"
    )
    markdown = report(
        args, machine, assembly, loads, timings, decoding, time.perf_counter() - started
    )
    publish(markdown, args)


if __name__ == "__main__":
    main()
