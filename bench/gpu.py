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
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from collections.abc import Callable, Sequence, Sized
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image
from prometheus_client import CollectorRegistry

from bench.common.corpus import make_corpus
from bench.common.report import add_output_args, machine_info, publish, report_header, say, table
from bench.common.speech import spoken_ogg
from glimpse.config import LimitsSettings, Settings
from glimpse.media import validate_media
from glimpse.metrics import ModelMetrics
from glimpse.models.base import InferenceModel
from glimpse.models.captioning import load_captioner
from glimpse.models.speech import load_transcriber
from glimpse.models.text import BATCH_SIZE, load_text_embedder

T = TypeVar("T")
SERVICE = "bench-gpu"
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


def thumbnails(count: int, seed: int) -> list[Image.Image]:
    """Decoded 512-px thumbnails of the corpus, as the caption worker gets them."""
    images = []
    for photo in make_corpus(count, 0, 0, seed):
        thumbnail = validate_media(photo.data, LimitsSettings()).thumbnail
        assert thumbnail is not None
        with Image.open(io.BytesIO(thumbnail)) as image:
            images.append(image.convert("RGB"))
    return images


def cycled(items: Sequence[T], n: int) -> list[T]:
    return [items[i % len(items)] for i in range(n)]


def counted(run: Callable[[list[Any]], Sized], inputs: list[Any]) -> float:
    """One call of ``run`` over ``inputs``: the results it returned."""
    return len(run(inputs))


def bench_models(args: argparse.Namespace, settings: Settings, folder: Path) -> list[Rate]:
    device, metrics, rates = args.device, ModelMetrics(CollectorRegistry(), SERVICE), []
    models = settings.models.model_copy(update={"device": device})
    say(f"{args.images} thumbnails …")
    images = thumbnails(args.images, args.seed)

    captioner = load_captioner(models)
    load_on(captioner, device, metrics)
    captions = [a.caption for a in captioner.predict(images)]
    for n in args.batch_sizes:
        captioner.batch_size = n  # one forward pass of the whole call
        batch = cycled(images, n)
        items, calls, wall = repeat(partial(counted, captioner.predict, batch), args.seconds)
        rates.append(Rate("caption", captioner.model_id, device, f"{n} images", items, calls, wall))
        say(f"  caption, batch {n}: {rates[-1].per_s:.1f} images/s")

    embedder = load_text_embedder(models)
    load_on(embedder, device, metrics)
    for n in args.batch_sizes:
        texts = cycled(captions, n)
        items, calls, wall = repeat(partial(counted, embedder.embed, texts), args.seconds)
        rates.append(Rate("embed", embedder.model_id, device, f"{n} texts", items, calls, wall))
        say(f"  embed, batch {n}: {rates[-1].per_s:.1f} texts/s")

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
    add_output_args(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    settings = Settings()  # the services' model settings, from the environment
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="glimpse-bench-gpu-") as folder:
        rates = bench_models(args, settings, Path(folder))
    publish(markdown(args, rates, time.perf_counter() - started), args)


if __name__ == "__main__":
    main()
