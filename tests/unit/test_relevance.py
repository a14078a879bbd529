"""What a search shows: hits judged against the library's typical score for the query."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest

from glimpse.relevance import Background, RelevanceSettings, judge, summarise
from glimpse.search import Candidate

# A library where this query's typical similarity is 0.10, give or take 0.05.
TYPICAL = Background(median=0.10, spread=0.05, size=200)
SETTINGS = RelevanceSettings()  # strong from 3 spreads up, weak from 1.5, 2 weak at most


def candidate(similarity: float | None, keyword_rank: int | None = None) -> Candidate:
    return Candidate(uuid.uuid4(), 0.0, similarity, keyword_rank)


def shown(
    candidates: list[Candidate], typical: Background | None = TYPICAL, **settings: object
) -> list[tuple[float | None, bool]]:
    judged = judge(candidates, typical, RelevanceSettings(**settings))  # type: ignore[arg-type]
    return [(j.candidate.similarity, j.weak) for j in judged]


def test_a_hit_that_stands_out_is_a_match_and_the_near_ones_are_weak() -> None:
    # 0.40 is 6 spreads above typical; 0.20 is 2; 0.15 is 1 (the library's usual).
    result = shown([candidate(0.40), candidate(0.20), candidate(0.15)])
    assert result == [(0.40, False), (0.20, True)]


def test_nothing_stands_out_nothing_is_shown() -> None:
    assert shown([candidate(0.16), candidate(0.14), candidate(0.12)]) == []


def test_the_same_similarity_is_a_match_in_one_query_and_noise_in_another() -> None:
    # "a photo" is 0.30 from every labels caption: 0.32 says nothing there.
    generic = Background(median=0.30, spread=0.05, size=200)
    assert shown([candidate(0.32)], generic) == []
    assert shown([candidate(0.32)], TYPICAL) == [(0.32, False)]


def test_weak_matches_are_shown_when_nothing_is_strong_and_are_capped() -> None:
    result = shown([candidate(0.19 - i * 0.001) for i in range(10)])
    assert len(result) == SETTINGS.weak_limit
    assert all(weak for _, weak in result)


def test_a_full_text_match_is_shown_weak_and_strong_when_its_vector_agrees() -> None:
    words_only = candidate(None, keyword_rank=1)
    words_and_vector = candidate(0.20, keyword_rank=2)
    assert shown([words_and_vector, words_only]) == [(0.20, False), (None, True)]


def test_nothing_below_the_floor_however_tight_the_library() -> None:
    tight = Background(median=0.02, spread=0.001, size=200)
    assert shown([candidate(0.08)], tight) == []


def test_a_vector_alone_below_the_cutoff_is_a_guess_however_far_it_stands_out() -> None:
    # Nonsense ("xqzvy plorf") is near nothing; one caption of hundreds sits at 0.23 by
    # chance, 3.6 spreads above the rest. Its words would have made it a match.
    nonsense = Background(median=0.05, spread=0.05, size=200)
    assert shown([candidate(0.23)], nonsense) == [(0.23, True)]
    assert shown([candidate(0.23, keyword_rank=1)], nonsense) == [(0.23, False)]
    assert shown([candidate(0.26)], nonsense) == [(0.26, False)]


def test_a_sure_similarity_still_has_to_stand_out() -> None:
    assert shown([candidate(0.55)], TYPICAL) == [(0.55, False)]
    assert shown([candidate(0.55)], Background(0.50, 0.05, 200)) == []


def test_a_tiny_library_or_the_fixed_policy_uses_the_cutoff() -> None:
    candidates = [candidate(0.30), candidate(0.20), candidate(None, keyword_rank=1)]
    tiny = Background(median=0.10, spread=0.05, size=3)
    expected = [(0.30, False), (None, False)]
    assert shown(candidates, tiny) == expected
    assert shown(candidates, None) == expected
    assert shown(candidates, policy="fixed", min_similarity=0.25) == expected


def test_order_is_kept() -> None:
    candidates = [candidate(0.20), candidate(0.45), candidate(0.19)]
    assert [s for s, _ in shown(candidates)] == [0.20, 0.45, 0.19]


def test_summarise_is_robust_to_the_few_that_match() -> None:
    similarities = [0.1 + 0.01 * (i % 10) for i in range(100)] + [0.9, 0.95]
    typical = summarise(similarities, min_spread=0.02)
    assert typical.median == pytest.approx(0.145, abs=0.01)
    assert 0.02 <= typical.spread < 0.05
    assert typical.size == 102


def test_summarise_never_goes_below_the_minimum_spread() -> None:
    assert summarise([0.2] * 20, min_spread=0.02).spread == 0.02


# The same library in a joint image-text space: CLIP-like scores, typical 0.18 ± 0.02.
JOINT_TYPICAL = Background(median=0.18, spread=0.02, size=200)


def seen(similarity: float | None, joint: float, keyword_rank: int | None = None) -> Candidate:
    return Candidate(uuid.uuid4(), 0.0, similarity, keyword_rank, joint_similarity=joint)


def judged_joint(
    candidates: list[Candidate], settings: RelevanceSettings = SETTINGS
) -> list[tuple[float | None, bool]]:
    judged = judge(candidates, TYPICAL, settings, JOINT_TYPICAL)
    return [(j.candidate.joint_similarity, j.weak) for j in judged]


def test_an_image_that_stands_out_in_the_joint_space_is_a_match_whatever_its_caption() -> None:
    # 0.26 is 4 spreads above the images' typical score: the caption missed (0.12)
    assert judged_joint([seen(0.12, 0.26)]) == [(0.26, False)]


def test_a_joint_hint_is_a_match_when_the_words_agree_and_weak_alone() -> None:
    # 0.22 is 2 spreads up: a hint, not proof
    agreed = seen(None, 0.22, keyword_rank=1)
    alone = seen(0.11, 0.215)
    assert judged_joint([agreed, alone]) == [(0.22, False), (0.215, True)]


def test_images_at_the_joint_models_usual_score_are_not_shown() -> None:
    assert judged_joint([seen(0.11, 0.19), seen(0.12, 0.17)]) == []


def test_an_image_list_that_does_not_decide_only_ranks_and_guesses() -> None:
    # How the API judges the text-to-visual bridge: a weak guess however far the picture
    # stands out, and no match from two weak signals; the words alone make matches.
    bridged = replace(SETTINGS, image_decides=False, weak_limit=3)  # room for three guesses
    far_out = seen(0.12, 0.30)  # 6 spreads up in the image list, nothing in the text
    two_hints = seen(0.18, 0.22)  # 1.6 spreads up on both sides
    worded = seen(None, 0.22, keyword_rank=1)  # the words are in its text

    assert judged_joint([far_out, two_hints, worded], bridged) == [
        (0.30, True),
        (0.22, True),
        (0.22, True),
    ]
    assert judged_joint([far_out, two_hints]) == [(0.30, False), (0.22, False)]  # deciding
    assert judged_joint([seen(0.11, 0.22)], replace(SETTINGS, image_weak=2.5)) == []
