"""What holding the visual model costs the API, and what one image query costs.

    python -m bench.image_query [--runs 3] [--queries 20] [--no-record]

Each run is a fresh child process that does what the API process does at startup, in
order, measuring RSS (``VmRSS``) and seconds after each step:

1. import the API (``services.search_api.app``, no model yet);
2. load the text query model (MiniLM) and embed one query, as ``query_model`` does;
3. load the visual model (the configured captioner, EfficientNet-Lite0) and run one
   picture: what ``image_search.enabled`` adds.

Then, in the same process, ``--queries`` image queries through ``picture_vector`` (the
function the route runs: libmagic, validation with the image-search limits, thumbnail,
model) for a sample photo, a 12-MP phone photo (JPEG) and a 320-px drawing;
median and p95 milliseconds. Torch uses its default threads, as the API does.

Prints Markdown and appends it, dated, to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common.quiet import OtherLoad
from bench.common.report import (
    REPO,
    add_output_args,
    machine_info,
    percentile,
    publish,
    report_header,
    say,
    table,
)


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise LookupError("VmRSS")


def _pictures() -> dict[str, bytes]:
    from PIL import Image, ImageDraw

    sys.path.insert(0, str(REPO / "tests"))
    from models_fixtures import photo

    pictures = {}
    out = io.BytesIO()
    photo("coffee").save(out, "PNG")
    pictures["sample photo (400x400 PNG)"] = out.getvalue()
    big = photo("astronaut").resize((4000, 3000))
    out = io.BytesIO()
    big.save(out, "JPEG", quality=80)
    pictures[f"phone photo (4000x3000 JPEG, {len(out.getvalue()) / 1e6:.1f} MB)"] = out.getvalue()
    drawing = Image.new("RGB", (320, 320), "white")
    ImageDraw.Draw(drawing).ellipse((60, 60, 260, 260), outline=(17, 17, 17), width=10)
    out = io.BytesIO()
    drawing.save(out, "PNG")
    pictures["drawing (320x320 PNG)"] = out.getvalue()
    return pictures


def child(queries: int) -> dict[str, object]:
    """One API-like process: import, text model, visual model, then image queries."""
    steps: list[tuple[str, float, float]] = []  # (step, seconds, RSS MiB after)
    pictures = _pictures()
    start = time.perf_counter()
    import services.search_api.app  # noqa: F401  (what the API imports before any model)

    steps.append(("import the API", time.perf_counter() - start, _rss_mib()))

    from glimpse.config import Settings
    from glimpse.models.captioning import load_captioner
    from glimpse.models.text import load_text_embedder
    from services.search_api.image_queries import picture_vector

    settings = Settings()
    start = time.perf_counter()
    text = load_text_embedder(settings.models)
    text.load()
    text.embed(["a cup of coffee"])
    steps.append(("load the text model + 1 query", time.perf_counter() - start, _rss_mib()))

    checks = settings.limits.model_copy(
        update={
            "max_bytes": settings.image_search.max_bytes,
            "max_pixels": settings.image_search.max_pixels,
        }
    )
    start = time.perf_counter()
    captioner = load_captioner(settings.models)
    captioner.load()
    picture_vector(next(iter(pictures.values())), captioner, checks)
    steps.append(("load the visual model + 1 picture", time.perf_counter() - start, _rss_mib()))

    timings: dict[str, list[float]] = {}
    for name, data in pictures.items():
        if len(data) > checks.max_bytes:
            raise SystemExit(f"{name} is {len(data)} bytes, over the image-search limit")
        timings[name] = []
        for _ in range(queries):
            began = time.perf_counter()
            picture_vector(data, captioner, checks)
            timings[name].append((time.perf_counter() - began) * 1000)
    return {"steps": steps, "timings": timings}


@dataclass(frozen=True, slots=True)
class Run:
    steps: list[tuple[str, float, float]]  # (step, seconds, RSS MiB after)
    timings: dict[str, list[float]]  # picture -> milliseconds per query


def run_child(queries: int) -> Run:
    done = subprocess.run(
        [sys.executable, "-m", "bench.image_query", "--child", "--queries", str(queries)],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    steps = [(str(name), float(s), float(mib)) for name, s, mib in result["steps"]]
    return Run(steps, {k: [float(t) for t in v] for k, v in result["timings"].items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="fresh processes")
    parser.add_argument("--queries", type=int, default=20, help="image queries per picture")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    add_output_args(parser)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.queries)))
        return

    machine = machine_info(with_torch=True)
    runs = []
    with OtherLoad() as load:
        for run in range(args.runs):
            say(f"run {run + 1}/{args.runs}")
            runs.append(run_child(args.queries))
    machine["other processes during the runs"] = f"{load.share:.0%} of the CPUs"

    lines = report_header("Image queries in the API", machine)
    rows = []
    for i, (name, _, _) in enumerate(runs[0].steps):
        seconds = [r.steps[i][1] for r in runs]
        after = [r.steps[i][2] for r in runs]
        before = [r.steps[i - 1][2] if i else 0.0 for r in runs]
        grown = [a - b for a, b in zip(after, before, strict=True)]
        rows.append([
            name,
            " / ".join(f"{s:.2f}" for s in seconds),
            f"{statistics.median(after):.0f}",
            f"+{statistics.median(grown):.0f}" if i else "",
        ])  # fmt: skip
    lines += ["", f"Startup, {args.runs} fresh processes:", ""]
    header = ["step", "seconds (each run)", "RSS after, MiB (median)", "MiB added"]
    lines.append(table(header, rows))
    query_rows = []
    for name in runs[0].timings:
        ms = [t for r in runs for t in r.timings[name]]
        query_rows.append([name, f"{percentile(ms, 50):.1f}", f"{percentile(ms, 95):.1f}"])
    lines += ["", f"One image query (`picture_vector`), {args.queries} per picture and run:", ""]
    lines.append(table(["picture", "median ms", "p95 ms"], query_rows))
    publish("\n".join(lines) + "\n", args)


if __name__ == "__main__":
    main()
