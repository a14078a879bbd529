"""Which hybrid-search candidates to show, judged from the query's own scores.

A fixed cosine cutoff fails both ways: some queries sit close to every caption (a
query about "photos" matches them all at 0.3) and others reach the right photo only at
0.2. What tells a match from the rest is how far it stands out from the *library's*
typical similarity to that same query. So each query is also compared with a fixed
pseudo-random sample of the library's vectors (the first rows in media-id order: ids
are uuid5 hashes, unrelated to content), and a candidate's standout is its similarity
in robust standard deviations above that sample's median:

    standout = (similarity - median) / (IQR / 1.349)

A candidate whose standout reaches ``strong`` (or whose similarity is ``sure``) is a
match, and so is a full-text match whose vector reaches ``weak``: two signals agree. A
vector alone is never a match below ``min_similarity``, however far it stands out: a
nonsense query sits near nothing, and by chance one caption of a few hundred sits three
spreads above the rest (bench/quality.py: 43 of 200 random letter strings got a match
without that floor, 2 with it). A few more that reach ``weak``, or match the words
only, are shown marked as weak matches: with captions made of ImageNet labels the
right photo is often among them.
When nothing stands out the answer is empty. A library too small to have a typical
score falls back to the fixed cutoff.

With a joint image-text model the query is also compared with the images themselves,
and the same measure is taken in that space against its own sample (its similarities
live on another scale: CLIP's rarely pass 0.35). An image that stands out there
``strong`` is a match; one that stands out ``weak`` is a match when the text side
agrees (its words or its caption's vector), else a weak match.
"""

from __future__ import annotations

import uuid
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import psycopg
from pgvector import HalfVector

from glimpse.db.statements import Statements
from glimpse.db.vectors import VectorModel
from glimpse.library_sample import LibrarySample, sample_statement, similarities
from glimpse.phases import Phases
from glimpse.search import (
    ANY_SOURCES,
    DEFAULT_EF_SEARCH,
    UNBOUNDED,
    Candidate,
    KeywordBounds,
    SearchFilters,
    TextSources,
    VectorQuery,
    hybrid,
)

Policy = Literal["standout", "fixed"]
# A robust spread (IQR / 1.349) estimates one standard deviation of a normal sample.
_IQR_TO_SIGMA = 1.349


@dataclass(frozen=True, slots=True)
class Background:
    """The query's similarity to a sample of the library: its typical score."""

    median: float
    spread: float  # robust standard deviation, never below the settings' floor
    size: int


@dataclass(frozen=True, slots=True)
class RelevanceSettings:
    policy: Policy = "standout"
    strong: float = 3.0  # standouts this high are matches
    # Standouts this high are shown in rank order marked weak, and so are full-text
    # matches whose vector does not stand out. At most weak_limit of them:
    # a guess or two helps when the caption missed, a page of them does not
    # (bench/quality.py, with the bridge: 4 found 2 more photos of 45 in the top 5
    # and gave absent things 0.9 more guesses per query than 2).
    weak: float = 1.5
    weak_limit: int = 2
    # Never shown below this similarity, whatever the standout (a library of near-
    # identical captions has a tiny spread; nonsense is near nothing).
    floor: float = 0.1
    # Always a match from this similarity on (for MiniLM, the query says what the
    # caption says).
    sure: float = 0.5
    min_spread: float = 0.02
    # Fewer sampled vectors than this: no typical score to speak of, fixed cutoff.
    min_sample: int = 8
    sample: int = 256  # library vectors the query is compared with
    # The fixed cutoff; with the standout policy, the least similarity at which a vector
    # alone (no words of the query in the item's text) makes a match.
    min_similarity: float = 0.25
    # Whether the image list (joint model or text-to-visual bridge) may make a match: an
    # image standing out ``strong`` alone, or ``weak`` with the text side agreeing. False:
    # it only ranks and offers weak guesses; the text side alone makes matches (the
    # bridge: a proxy, whose weak standouts met the captions' by chance on nonsense).
    image_decides: bool = True
    image_weak: float | None = None  # the image list's weak threshold; None: ``weak``

    @property
    def image_weak_at(self) -> float:
        return self.weak if self.image_weak is None else self.image_weak


@dataclass(frozen=True, slots=True)
class Judged:
    candidate: Candidate
    weak: bool
    standout: float | None  # None: no vector similarity, or no background
    joint_standout: float | None = None  # the same in the joint model's space


@dataclass(frozen=True, slots=True)
class _Standouts:
    text: float | None
    joint: float | None


def search(
    statements: Statements,
    text: str,
    query: np.ndarray,
    model: VectorModel,
    filters: SearchFilters,
    settings: RelevanceSettings,
    candidates: int,
    *,
    ef_search: int = DEFAULT_EF_SEARCH,
    keyword_bounds: KeywordBounds = UNBOUNDED,
    sources: TextSources | None = ANY_SOURCES,
    phases: Phases | None = None,
    joint: VectorQuery | None = None,
    keyword_hits: Future[list[uuid.UUID]] | None = None,
    sample: LibrarySample | None = None,
) -> list[Judged]:
    """Hybrid search for ``text`` (``query`` is its vector; ``joint`` its vector of the
    active joint model, if any), judged: what to show, best first, weak matches marked.
    ``phases`` gets hybrid's and ``background_sql``; judging counts as ``fuse``. The
    library's typical scores are asked for beside the lists (a few ms, wasted only when
    nothing is found), or computed from ``sample`` when it holds the library's sample."""
    phases = phases or Phases()
    # The standout policy judges every candidate itself; the fixed one drops vector
    # matches below the cutoff before fusion, as search always did.
    cutoff = settings.min_similarity if settings.policy == "fixed" else -1.0
    typical = joint_typical = None
    if settings.policy == "standout":
        own = VectorQuery(model, query)
        typical = _start_background(statements, own, settings, phases, sample)
        if joint is not None:
            joint_typical = _start_background(statements, joint, settings, phases, sample)
    fused = hybrid(
        statements,
        text,
        query,
        model,
        filters,
        cutoff,
        candidates,
        ef_search=ef_search,
        keyword_bounds=keyword_bounds,
        sources=sources,
        phases=phases,
        joint=joint,
        keyword_hits=keyword_hits,
    )
    if not fused:
        return []
    text_sample = typical.result() if typical else None
    joint_sample = joint_typical.result() if joint_typical else None
    with phases.phase("fuse"):
        return judge(fused, text_sample, settings, joint_sample)


def _start_background(
    statements: Statements,
    query: VectorQuery,
    settings: RelevanceSettings,
    phases: Phases,
    sample: LibrarySample | None,
) -> Future[Background | None]:
    if sample is not None and (kept := sample.kept(query.model)) is not None:
        done: Future[Background | None] = Future()
        done.set_result(_typical(kept, query.vector, settings.min_spread))
        return done

    def run(conn: psycopg.Connection[Any]) -> Background | None:
        with phases.phase("background_sql"):
            typical = background(
                conn, query.model, query.vector, settings.sample, settings.min_spread
            )
            if sample is not None and typical is not None and typical.size == sample.size:
                sample.keep(conn, query.model)  # a full sample: the next searches use it
        return typical

    return statements.submit(run)


def background(
    conn: psycopg.Connection[Any],
    model: VectorModel,
    query: np.ndarray,
    sample: int,
    min_spread: float,
) -> Background | None:
    """The query's similarity to up to ``sample`` library vectors; None without any."""
    rows = conn.execute(
        sample_statement(model, "1 - (e.embedding::{cast} <=> %(q)s::{cast}) AS similarity"),
        {"q": HalfVector(query), "size": sample},
    ).fetchall()
    if not rows:
        return None
    return summarise([float(r["similarity"]) for r in rows], min_spread)


def _typical(sample: np.ndarray, query: np.ndarray, min_spread: float) -> Background | None:
    if not len(sample):
        return None
    return summarise(list(similarities(sample, query)), min_spread)


def summarise(similarities: list[float], min_spread: float) -> Background:
    values = np.asarray(similarities, dtype=np.float64)
    q25, median, q75 = np.percentile(values, [25, 50, 75])
    spread = max(float(q75 - q25) / _IQR_TO_SIGMA, min_spread)
    return Background(float(median), spread, len(similarities))


def judge(
    candidates: list[Candidate],
    typical: Background | None,
    settings: RelevanceSettings,
    joint_typical: Background | None = None,
) -> list[Judged]:
    """The candidates to show, in their fused order, each marked weak or not."""
    if settings.policy == "fixed" or typical is None or typical.size < settings.min_sample:
        return _fixed(candidates, settings.min_similarity)
    if joint_typical is not None and joint_typical.size < settings.min_sample:
        joint_typical = None
    shown = []
    weak_left = settings.weak_limit
    for candidate in candidates:
        standouts = _Standouts(
            _standout(candidate.similarity, typical),
            _standout(candidate.joint_similarity, joint_typical),
        )
        judged = Judged(candidate, False, standouts.text, standouts.joint)
        if _is_strong(candidate, standouts, settings):
            shown.append(judged)
        elif weak_left > 0 and (
            candidate.keyword_rank is not None
            or _stands_out(candidate, standouts.text, settings)
            or _joint_stands_out(standouts.joint, settings)
        ):
            shown.append(Judged(candidate, True, standouts.text, standouts.joint))
            weak_left -= 1
    return shown


def _standout(similarity: float | None, typical: Background | None) -> float | None:
    if similarity is None or typical is None:
        return None
    return (similarity - typical.median) / typical.spread


def _stands_out(candidate: Candidate, standout: float | None, settings: RelevanceSettings) -> bool:
    similarity = candidate.similarity
    if similarity is None or standout is None or similarity < settings.floor:
        return False
    return standout >= settings.weak


def _joint_stands_out(standout: float | None, settings: RelevanceSettings) -> bool:
    return standout is not None and standout >= settings.image_weak_at


def _is_strong(candidate: Candidate, standouts: _Standouts, settings: RelevanceSettings) -> bool:
    text_agrees = candidate.keyword_rank is not None or _stands_out(
        candidate, standouts.text, settings
    )
    if settings.image_decides and _joint_stands_out(standouts.joint, settings):
        assert standouts.joint is not None
        # the image itself matches the query: strongly, or as the text side says too
        return standouts.joint >= settings.strong or text_agrees
    if not _stands_out(candidate, standouts.text, settings):
        return False
    assert candidate.similarity is not None and standouts.text is not None
    if candidate.keyword_rank is not None:
        return True  # the query's words are in its text and its vector agrees
    if candidate.similarity >= settings.sure:
        return True
    return standouts.text >= settings.strong and candidate.similarity >= settings.min_similarity


def _fixed(candidates: list[Candidate], min_similarity: float) -> list[Judged]:
    """The old rule: vector matches from ``min_similarity`` on, and full-text matches."""
    return [
        Judged(c, False, None)
        for c in candidates
        if c.keyword_rank is not None
        or (c.similarity is not None and c.similarity >= min_similarity)
    ]
