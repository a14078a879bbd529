"""Switching the text model on a real stack: a second model filled side by side, activated,
the old one purged, while searches go on. Its own stack: the switch changes what every
later search answers with.

The second model is the shipped MiniLM under a new id with [CLS] pooling: other vectors
of the same dimension, so a query vector of one model *could* meet the other's vectors
without an error. Every answer is checked: its hits' similarities must be what the
reported model's query vector and that model's stored vectors give.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from harness import RunningStack, private_settings, running_stack
from helpers import (
    api,
    connect,
    glimpse,
    store_of,
    unique_png,
    upload_sample_photos,
    wait_searchable,
)

from glimpse.config import ModelSettings, Settings
from glimpse.db import vectors
from glimpse.models.text import TextEmbedder, load_text_embedder
from glimpse.stack.supervisor import service_env

pytestmark = pytest.mark.integration

OLD = "minilm/all-MiniLM-L6-v2"
NEW = "minilm/all-MiniLM-L6-v2+cls"
QUERIES = ["a cat", "a cup of coffee", "a rocket launch", "a horse", "a man on a motorbike"]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    settings = private_settings(tmp_path_factory.mktemp("switch-home"))
    settings.search.model_check_s = 0.5
    with running_stack(settings) as running:
        yield running


@pytest.fixture(scope="module")
def embedders() -> dict[str, TextEmbedder]:
    """Both models in this process, to recompute what each answer's scores must be."""
    loaded = {}
    for pooling in ("mean", "cls"):
        embedder = load_text_embedder(ModelSettings(text_pooling=pooling, torch_threads=1))
        embedder.load()
        loaded[embedder.model_id] = embedder
    assert set(loaded) == {OLD, NEW}
    return loaded


class SearchLoop(threading.Thread):
    """Searches one query after another until stopped; records every answer's model and
    anything wrong: an error, or hits whose scores are not of the model it names."""

    def __init__(self, settings: Settings, url: str, embedders: dict[str, TextEmbedder]) -> None:
        super().__init__(name="search-loop", daemon=True)
        self.settings = settings
        self.url = url
        self.embedders = embedders
        self.stopping = threading.Event()
        self.models: list[str] = []  # per answer, in order
        self.errors: list[str] = []
        self.mixed: list[str] = []
        self.checked_hits = 0

    def run(self) -> None:
        with httpx.Client(timeout=30) as client, connect(self.settings) as conn:
            from pgvector.psycopg import register_vector

            register_vector(conn)
            i = 0
            while not self.stopping.is_set():
                query = QUERIES[i % len(QUERIES)]
                i += 1
                try:
                    # min_score -1: every vector candidate is shown with its similarity
                    response = client.get(
                        f"{self.url}/v1/search", params={"q": query, "limit": 10, "min_score": -1}
                    )
                except httpx.HTTPError as exc:
                    self.errors.append(f"{query}: {exc!r}")
                    continue
                if response.status_code != 200:
                    self.errors.append(f"{query}: {response.status_code} {response.text[:200]}")
                    continue
                body = response.json()
                self.models.append(body["model"])
                self.check(conn, query, body)

    def check(self, conn: Any, query: str, body: dict[str, Any]) -> None:
        model = body["model"]
        scored = {h["id"]: h["similarity"] for h in body["hits"] if h["similarity"] is not None}
        if not scored:
            return
        rows = conn.execute(
            "SELECT media_id::text AS id, embedding FROM embeddings "
            "WHERE model = %(model)s AND kind = 'text' AND media_id = ANY(%(ids)s::uuid[])",
            {"model": model, "ids": list(scored)},
        ).fetchall()
        stored = {r["id"]: r["embedding"].to_numpy().astype(np.float64) for r in rows}
        q = self.embedders[model].embed([query])[0].astype(np.float16).astype(np.float64)
        for mid, similarity in scored.items():
            if mid not in stored:
                if model == NEW:  # the old model's vectors may be purged meanwhile
                    self.mixed.append(f"{query}: hit {mid} has no {model} vector")
                continue
            v = stored[mid]
            expected = float(q @ v / (np.linalg.norm(q) * np.linalg.norm(v)))
            self.checked_hits += 1
            if abs(expected - similarity) > 0.003:
                self.mixed.append(f"{query}: {mid} scored {similarity}, {model} gives {expected}")

    def wait_for(self, more: int, model: str | None = None, timeout_s: float = 180) -> None:
        """Until ``more`` further answers came (the last of them from ``model``)."""
        target = len(self.models) + more
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if len(self.models) >= target and (model is None or self.models[-1] == model):
                return
            assert self.is_alive(), "the search loop died"
            time.sleep(0.1)
        raise AssertionError(
            f"no {more} more answers from {model or 'any model'}: {self.models[-5:]}"
        )


def wait_query_model(url: str) -> None:
    """Until the API's query model is loaded (searches answer 503 before)."""
    deadline = time.monotonic() + 180
    while httpx.get(f"{url}/v1/search", params={"q": "cat"}, timeout=30).status_code == 503:
        assert time.monotonic() < deadline, "the query model never loaded"
        time.sleep(0.3)


def start_side_by_side_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        **service_env(settings),
        "GLIMPSE_MODELS__TEXT_POOLING": "cls",
        "GLIMPSE_MODELS__TORCH_THREADS": "1",
        "GLIMPSE_WORKER__HEALTH_PORT": "0",
        "PYTHONPATH": str(REPO),
    }
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.embed", "--side-by-side"],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_registered(settings: Settings, model: str, worker: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert worker.poll() is None, "the side-by-side worker exited"
        with connect(settings) as conn:
            if vectors.model_of(conn, model, "text") is not None:
                return
        time.sleep(0.3)
    raise AssertionError(f"{model} never registered")


def count_vectors(settings: Settings, model: str) -> int:
    with connect(settings) as conn:
        row = conn.execute(
            "SELECT count(*) AS n FROM embeddings WHERE model = %(m)s AND kind = 'text'",
            {"m": model},
        ).fetchone()
    assert row is not None
    return int(row["n"])


def upload_one(stack: RunningStack) -> None:
    key = f"switch/{uuid.uuid4().hex[:6]}.png"
    store_of(stack.settings).put(key, unique_png(4242), "image/png")
    wait_searchable(stack, [key])


def wait_vectors(settings: Settings, model: str, n: int) -> int:
    deadline = time.monotonic() + 60
    while (found := count_vectors(settings, model)) < n and time.monotonic() < deadline:
        time.sleep(0.3)
    return found


def assert_nothing_left_of(settings: Settings, model: str) -> None:
    with connect(settings) as conn:
        for table in ("embeddings", "stage_models", "vector_models"):
            row = conn.execute(
                f"SELECT count(*) AS n FROM {table} WHERE model = %(m)s", {"m": model}
            ).fetchone()
            assert row is not None and row["n"] == 0, table
        assert vectors.index_state(conn, vectors.index_name(model, "text")) == "missing"


def test_a_new_text_model_is_filled_side_by_side_activated_and_the_old_one_purged_under_search(
    own_stack: RunningStack, embedders: dict[str, TextEmbedder], tmp_path: Path
) -> None:
    s = own_stack.settings
    env = {**os.environ, **service_env(s), "COLUMNS": "300"}  # rich: no wrapped messages
    upload_sample_photos(own_stack)
    wait_query_model(api(own_stack))
    loop = SearchLoop(s, api(own_stack), embedders)
    loop.start()
    worker = start_side_by_side_worker(s, tmp_path / "embed-side-by-side.log")
    try:
        loop.wait_for(5, OLD)
        wait_registered(s, NEW, worker)
        covered = count_vectors(s, OLD)
        # Its groups are new: it reads the live topics from their start, so it may have
        # caught up already. Take two items out of it, as if it had not.
        wait_vectors(s, NEW, covered)
        with connect(s) as conn:
            conn.execute(
                "DELETE FROM embeddings WHERE ctid IN (SELECT ctid FROM embeddings "
                "WHERE model = %(m)s AND kind = 'text' LIMIT 2)",
                {"m": NEW},
            )

        refused = glimpse(env, "models", "activate", "text", NEW)
        assert refused.returncode != 0
        assert f"covers {covered - 2} items" in refused.stderr
        assert "2 would drop out of search" in refused.stderr

        filled = glimpse(env, "backfill", "--stage", "embed", "--model", NEW, "--all")
        assert filled.returncode == 0, filled.stderr
        assert count_vectors(s, NEW) == count_vectors(s, OLD) == covered >= 6
        listed = glimpse(env, "models", "list")
        assert listed.returncode == 0, listed.stderr
        registry = listed.stdout.split("registered models")[1].splitlines()
        lines = {m: next(line for line in registry if f" {m} " in line) for m in (OLD, NEW)}
        assert "active" in lines[OLD] and "active" not in lines[NEW]
        loop.wait_for(5, OLD)  # the backfill changed nothing searches see

        switched = glimpse(env, "models", "activate", "text", NEW)
        assert switched.returncode == 0, switched.stderr
        loop.wait_for(5, NEW)  # the API follows without a restart

        # a live upload now: both workers embed it, each in its own consumer group
        upload_one(own_stack)
        assert wait_vectors(s, NEW, covered + 1) == covered + 1

        purged = glimpse(env, "models", "purge", OLD)
        assert purged.returncode == 0, purged.stderr
        loop.wait_for(10, NEW)
    finally:
        loop.stopping.set()
        loop.join(timeout=60)
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)

    assert loop.errors == []
    assert loop.mixed == []
    assert loop.checked_hits > 0
    first_new = loop.models.index(NEW)
    assert set(loop.models[:first_new]) == {OLD} and set(loop.models[first_new:]) == {NEW}
    assert_nothing_left_of(s, OLD)
    refused_purge = glimpse(env, "models", "purge", NEW)
    assert refused_purge.returncode != 0 and "active text model" in refused_purge.stderr
