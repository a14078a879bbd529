"""Where a search's time goes: the query embedding, each SQL step, fusion and judging.

The request histogram says a search was slow; this says whether to look at the model
(``embed``), HNSW (``vector_sql``), full text (``keyword_sql``), the background sample
(``background_sql``), RRF and judging (``fuse``) or loading the hits (``hits_sql``).
The SQL steps run side by side (full text already while the query is embedded): each
records its own time, and a slow search is as slow as its slowest step, not their sum.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram

from glimpse.phases import Phases

PHASES = (
    "embed",
    "joint_embed",
    "vector_sql",
    "keyword_sql",
    "joint_sql",
    "background_sql",
    "fuse",
    "hits_sql",
)
PHASE_SECONDS_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
)  # fmt: skip


class SearchMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.phase_seconds = Histogram(
            "glimpse_search_phase_seconds",
            "Seconds one search spent in each phase (typed and voice searches)",
            ["phase"],
            buckets=PHASE_SECONDS_BUCKETS,
            registry=registry,
        )
        for phase in PHASES:  # every phase's series exists before the first search
            self.phase_seconds.labels(phase)

    def observe(self, phases: Phases) -> None:
        for phase, seconds in phases.seconds.items():
            self.phase_seconds.labels(phase).observe(seconds)
