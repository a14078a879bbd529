"""Which words OCR keeps: confident dictionary words, sure names and numbers, and no
lone scraps of noise."""

from __future__ import annotations

from pathlib import Path

from glimpse.models.ocr_words import Dictionary, WordRules, clean, keep

WORDS = Dictionary(["bus", "stop", "the", "harbour", "in", "ay", "ge", "cat", "well-known"])
RULES = WordRules(min_confidence=70, sure_confidence=90)


def test_confident_dictionary_words_are_kept_in_order_without_punctuation() -> None:
    read = [("(The", 95.0), ("harbour,", 91.0), ("BUS", 80.0), ("stop.", 75.0)]

    assert [w for w, _ in keep(read, WORDS, RULES)] == ["The", "harbour", "BUS", "stop"]


def test_unsure_words_and_symbols_are_dropped() -> None:
    read = [("harbour", 95.0), ("bus", 40.0), ("\\\\<", 0.0), ("SSS", 73.0), ("=", 22.0)]

    assert keep(read, WORDS, RULES) == [("harbour", 95.0)]


def test_names_and_numbers_need_sure_confidence() -> None:
    read = [("harbour", 95.0), ("SpaceX", 96.0), ("Zorblat", 80.0), ("2024", 93.0), ("17", 60.0)]

    assert [w for w, _ in keep(read, WORDS, RULES)] == ["harbour", "SpaceX", "2024"]


def test_only_short_words_is_noise() -> None:
    assert keep([("ge", 95.0), ("ay", 92.0)], WORDS, RULES) == []


def test_a_lone_word_must_be_sure() -> None:
    assert keep([("stop", 80.0)], WORDS, RULES) == []
    assert keep([("STOP", 96.0)], WORDS, RULES) == [("STOP", 96.0)]


def test_one_letter_repeated_is_not_a_name() -> None:
    assert keep([("harbour", 95.0), ("SSSS", 95.0)], WORDS, RULES) == [("harbour", 95.0)]


def test_dictionary_knows_plurals_possessives_and_compounds_by_their_parts() -> None:
    assert WORDS.knows("Cat's")
    assert WORDS.knows("well-known")
    assert WORDS.knows("bus-stop")
    assert not WORDS.knows("cats")  # a real list has plurals; this one does not


def test_clean_strips_surrounding_punctuation_only() -> None:
    assert clean("“don't,”") == "don't"


def test_a_missing_word_list_is_empty(tmp_path: Path) -> None:
    assert len(Dictionary.load(tmp_path / "none")) == 0
