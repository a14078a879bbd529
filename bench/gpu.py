"""GPU benchmark: caption, embed and transcribe throughput per batch size, on CUDA.

    python -m bench.gpu                      # on a GPU machine: ~2-4 minutes
    python -m bench.gpu --device cpu --batch-sizes 1,4 --seconds 0.5 --no-record

The models are the services' own, built by the same loaders from the same settings
(``Settings()``: GLIMPSE_MODELS__CAPTIONER=blip etc. apply) with ``models.device`` set
to ``--device``, and reporting to the same ``ModelMetrics``. After each load the device
is read back from the ``glimpse_model_info`` metric, as Prometheus would see it: a
model asked for ``cuda`` that fell back to the CPU stops the run (``FellBackToCpu``), so a broken
driver or a CPU-only torch can never pass for GPU numbers.

1. caption: 512-px thumbnails of the photo corpus (made by ``validate_media``, as
   ingest makes them); the captioner's forward batch set to each batch size, one
   ``predict`` of that many images per call, repeated for ``--seconds`` after a warm-up;
2. embed: the captions step 1 produced, one ``embed`` call of each batch size (the
   embedder cuts calls into chunks of ``glimpse.models.text.BATCH_SIZE``);
3. transcribe: espeak-ng voice notes of ~3, 10 and 30 s (Ogg/Opus), one clip per call
   as the transcribe worker runs them (it has no batches): seconds of audio per second.

Prints a Markdown table and appends it, dated, to bench/RESULTS.md.

A GPU machine often lacks what ingest needs (libmagic, PyAV, pillow-heif) and the
wheels that hold the weights. ``--save-inputs DIR`` makes the thumbnails and their
captions here (as the pipeline does, on the CPU); ``--inputs DIR`` there reads them
instead, and ``--stages`` runs only the stages whose models travelled.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from collections.abc import Callable, Sequence, Sized
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image
from prometheus_client import CollectorRegistry

from bench.common.report import add_output_args, machine_info, publish, report_header, say, table
from glimpse.config import ModelSettings, Settings
from glimpse.metrics import ModelMetrics
from glimpse.models.base import InferenceModel
from glimpse.models.captioning import load_captioner
from glimpse.models.text import BATCH_SIZE, load_text_embedder

T = TypeVar("T")
SERVICE = "bench-gpu"
STAGES = ("caption", "embed", "transcribe")
# Voice-note-like texts; espeak at 150 words/min makes them about 3, 10 and 30 s long.
SPEECH = {
    "3 s": "Show me the photos of my dog playing on the beach.",
    "10 s": "Remind me to buy milk, eggs and bread on the way home tonight, and to call "
    "my sister about the birthday party on Saturday afternoon.",
    "30 s": "Notes from the garden this morning. The tomatoes are finally turning red, but "
    "the leaves on the lower branches have brown spots, so I cut them off. The beans need "
    "a taller frame before next week, and the apple tree by the fence has more fruit than "
    "last year. The birds have started eating the cherries again, so we should put the "
    "net back up before the weekend. Water everything on Thursday if it does not rain.",
}


class FellBackToCpu(RuntimeError):
    """A model asked for CUDA runs on the CPU: its numbers would be CPU numbers."""

    def __init__(self, model_id: str, device: str) -> None:
        super().__init__(
            f"{model_id} was asked for cuda but runs on {device} (glimpse_model_info"
            f'{{device="{device}"}}): no usable GPU for torch/CTranslate2 here'
        )


@dataclass(frozen=True, slots=True)
class Rate:
    stage: str
    model: str
    device: str
    batch: str  # what one call takes: "32 images", "one 10 s clip"
    items: float  # images, texts, or seconds of audio
    calls: int
    wall_s: float

    @property
    def per_s(self) -> float:
        return self.items / self.wall_s


def reported_device(registry: CollectorRegistry, model_id: str) -> str:
    """The device label of the model's ``glimpse_model_info`` series."""
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == "glimpse_model_info" and sample.labels["model"] == model_id:
                return sample.labels["device"]
    raise LookupError(f"{model_id} reported no glimpse_model_info")


def load_on(model: InferenceModel, device: str, metrics: ModelMetrics) -> float:
    """Load ``model`` (reporting to ``metrics``); fail if it is not where it was asked."""
    started = time.perf_counter()
    model.report_to(metrics).load()
    seconds = time.perf_counter() - started
    shown = reported_device(metrics.registry, model.model_id)
    if device == "cuda" and shown != "cuda":
        raise FellBackToCpu(model.model_id, shown)
    assert shown == model.device, (shown, model.device)
    say(f"  {model.model_id} on {shown}, loaded in {seconds:.1f} s")
    return seconds


def repeat(call: Callable[[], float], seconds: float) -> tuple[float, int, float]:
    """One warm-up call (kernel selection, allocations), then calls for ``seconds`` at
    least: (items, calls, wall seconds). Every call copies its results to the host, so
    the GPU work is done when it returns."""
    call()
    items, calls = 0.0, 0
    started = time.perf_counter()
    while True:
        items += call()
        calls += 1
        wall = time.perf_counter() - started
        if wall >= seconds:
            return items, calls, wall


@dataclass(frozen=True, slots=True)
class Inputs:
    thumbnails: list[bytes]  # 512-px JPEGs, as the caption worker gets them
    captions: list[str]  # theirs, as the embed worker gets them

    def images(self) -> list[Image.Image]:
        return [decoded(data) for data in self.thumbnails]


def decoded(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def make_inputs(count: int, seed: int, models: ModelSettings) -> Inputs:
    """Thumbnails of the photo corpus made by ``validate_media`` (as ingest makes them),
    captioned on the CPU by the configured captioner."""
    # Imported here: a GPU machine given --inputs needs neither libmagic nor PyAV.
    from bench.common.corpus import make_corpus
    from glimpse.config import LimitsSettings
    from glimpse.media import validate_media

    thumbnails = []
    for photo in make_corpus(count, 0, 0, seed):
        thumbnail = validate_media(photo.data, LimitsSettings()).thumbnail
        assert thumbnail is not None
        thumbnails.append(thumbnail)
    captioner = load_captioner(models.model_copy(update={"device": "cpu"}))
    captioner.load()
    analyses = captioner.predict([decoded(t) for t in thumbnails])
    return Inputs(thumbnails, [a.caption for a in analyses])


def save_inputs(inputs: Inputs, folder: Path) -> None:
    (folder / "thumbnails").mkdir(parents=True, exist_ok=True)
    for i, data in enumerate(inputs.thumbnails):
        (folder / "thumbnails" / f"{i:04d}.jpg").write_bytes(data)
    (folder / "captions.json").write_text(json.dumps(inputs.captions, indent=0))


def load_inputs(folder: Path) -> Inputs:
    thumbnails = [p.read_bytes() for p in sorted((folder / "thumbnails").glob("*.jpg"))]
    captions = json.loads((folder / "captions.json").read_text())
    if not thumbnails or len(thumbnails) != len(captions):
        raise ValueError(f"{folder}: {len(thumbnails)} thumbnails, {len(captions)} captions")
    return Inputs(thumbnails, captions)


def cycled(items: Sequence[T], n: int) -> list[T]:
    return [items[i % len(items)] for i in range(n)]


def counted(run: Callable[[list[Any]], Sized], inputs: list[Any]) -> float:
    """One call of ``run`` over ``inputs``: the results it returned."""
    return len(run(inputs))


def bench_models(
    args: argparse.Namespace, settings: Settings, inputs: Inputs, folder: Path
) -> list[Rate]:
    device, metrics, rates = args.device, ModelMetrics(CollectorRegistry(), SERVICE), []
    models = settings.models.model_copy(update={"device": device})

    if "caption" in args.stages:
        images = inputs.images()
        captioner = load_captioner(models)
        load_on(captioner, device, metrics)
        for n in args.batch_sizes:
            captioner.batch_size = n  # one forward pass of the whole call
            batch = cycled(images, n)
            items, calls, wall = repeat(partial(counted, captioner.predict, batch), args.seconds)
            rate = Rate("caption", captioner.model_id, device, f"{n} images", items, calls, wall)
            rates.append(rate)
            say(f"  caption, batch {n}: {rate.per_s:.1f} images/s")

    if "embed" in args.stages:
        embedder = load_text_embedder(models)
        load_on(embedder, device, metrics)
        for n in args.batch_sizes:
            texts = cycled(inputs.captions, n)
            items, calls, wall = repeat(partial(counted, embedder.embed, texts), args.seconds)
            rates.append(Rate("embed", embedder.model_id, device, f"{n} texts", items, calls, wall))
            say(f"  embed, batch {n}: {rates[-1].per_s:.1f} texts/s")

    if "transcribe" in args.stages:
        rates += bench_transcribe(args, settings, models, metrics, folder)
    return rates


def bench_transcribe(
    args: argparse.Namespace,
    settings: Settings,
    models: ModelSettings,
    metrics: ModelMetrics,
    folder: Path,
) -> list[Rate]:
    from bench.common.speech import spoken_ogg
    from glimpse.models.speech import load_transcriber  # PyAV and CTranslate2

    rates, device = [], args.device
    transcriber = load_transcriber(models, settings.home)  # whisper assembled there once
    load_on(transcriber, device, metrics)
    for name in args.clips:
        audio, clip_s = spoken_ogg(SPEECH[name], folder / "clips", name.replace(" ", ""))

        def transcribe(data: bytes = audio, length: float = clip_s) -> float:
            transcriber.transcribe(data, max_seconds=120, language="en")
            return length

        items, calls, wall = repeat(transcribe, args.seconds)
        one = f"one {clip_s:.0f} s clip"
        rates.append(Rate("transcribe", transcriber.model_id, device, one, items, calls, wall))
        say(f"  transcribe, {one}: {rates[-1].per_s:.1f} s of audio/s")
    return rates


def accelerator() -> dict[str, str]:
    import torch

    if not torch.cuda.is_available():
        return {"GPU": "none visible to torch"}
    props = torch.cuda.get_device_properties(0)
    return {
        "GPU": f"{props.name}, {props.total_memory / (1 << 30):.0f} GiB, CUDA {torch.version.cuda}",
        "GPU memory peak (torch)": f"{torch.cuda.max_memory_allocated() / (1 << 30):.2f} GiB",
    }


def markdown(args: argparse.Namespace, rates: list[Rate], wall_s: float) -> str:
    machine = machine_info({"device asked": args.device, **accelerator()}, with_torch=True)
    rows = [
        [
            r.stage,
            f"`{r.model}`",
            r.device,
            r.batch,
            str(r.calls),
            f"{1000 * r.wall_s / r.calls:.1f}",
            f"**{r.per_s:.1f}**",
        ]
        for r in rates
    ]
    header = ["stage", "model", "device (model-info)", "one call", "calls", "ms/call", "per s"]
    return "\n".join(
        [
            *report_header(f"Models per batch size on {args.device}", machine),
            "",
            f"Per stage, the services' models through their loaders; each row: a warm-up "
            f"call, then calls for ≥ {args.seconds:g} s. per s: images (caption), texts "
            f"(embed; calls over {BATCH_SIZE} texts run in chunks of {BATCH_SIZE}) or "
            f"seconds of audio (transcribe, beam {Settings().models.whisper_beam_size}, "
            f"language set). Whole run {wall_s:.0f} s.",
            "",
            table(header, rows),
            "",
        ]
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.gpu", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument(
        "--batch-sizes",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1, 8, 32, 64, 128],
        help="comma-separated, for caption and embed",
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="timed calls per row, at least")
    parser.add_argument("--images", type=int, default=64, help="distinct thumbnails")
    parser.add_argument(
        "--clips",
        type=lambda text: text.split(","),
        default=list(SPEECH),
        help=f"comma-separated, of: {', '.join(SPEECH)}",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--stages",
        type=lambda text: text.split(","),
        default=list(STAGES),
        help=f"comma-separated, of: {', '.join(STAGES)}",
    )
    parser.add_argument(
        "--inputs", type=Path, help="thumbnails and captions saved by --save-inputs"
    )
    parser.add_argument(
        "--save-inputs", type=Path, metavar="DIR", help="make --images inputs, save, exit"
    )
    add_output_args(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if unknown := set(args.stages) - set(STAGES):
        raise SystemExit(f"--stages: unknown {', '.join(sorted(unknown))}")
    settings = Settings()  # the services' model settings, from the environment
    if args.save_inputs:
        save_inputs(make_inputs(args.images, args.seed, settings.models), args.save_inputs)
        say(f"{args.images} thumbnails and captions saved in {args.save_inputs}")
        return
    started = time.perf_counter()
    say("inputs …")
    if args.inputs:
        inputs = load_inputs(args.inputs)
    else:
        inputs = make_inputs(args.images, args.seed, settings.models)
    with tempfile.TemporaryDirectory(prefix="glimpse-bench-gpu-") as folder:
        rates = bench_models(args, settings, inputs, Path(folder))
    publish(markdown(args, rates, time.perf_counter() - started), args)


if __name__ == "__main__":
    main()
