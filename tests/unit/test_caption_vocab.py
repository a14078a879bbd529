"""The trained captioner's words: tokenising, ids, round trips."""

from __future__ import annotations

import pytest

from glimpse.models.caption_vocab import BOS_ID, EOS_ID, SPECIALS, UNK_ID, Vocabulary, tokenize


def test_tokenize_lowercases_and_drops_punctuation_but_keeps_apostrophes_inside_words() -> None:
    assert tokenize("A Red circle, on the baker's TABLE!") == [
        "a", "red", "circle", "on", "the", "baker's", "table",
    ]  # fmt: skip
    assert tokenize("  'quoted' -- 3 cats ") == ["quoted", "3", "cats"]
    assert tokenize("") == []


def test_ids_follow_frequency_then_the_alphabet_so_the_same_captions_give_the_same_vocabulary() -> (
    None
):
    captions = ["a red circle", "a blue square", "A red square."]
    vocab = Vocabulary.build(captions)
    assert vocab.words[: len(SPECIALS)] == SPECIALS
    assert vocab.words[len(SPECIALS) :] == ("a", "red", "square", "blue", "circle")
    assert Vocabulary.build(reversed(captions)) == vocab


def test_encode_wraps_the_caption_and_decode_reads_it_back() -> None:
    vocab = Vocabulary.build(["a red circle on white"])
    ids = vocab.encode("A red circle, on white.")
    assert ids[0] == BOS_ID and ids[-1] == EOS_ID and len(ids) == 7
    assert vocab.decode(ids) == "a red circle on white"


def test_unknown_and_rare_words_read_as_unk_and_are_never_spoken() -> None:
    vocab = Vocabulary.build(["a red circle", "a red square", "a blue"], min_count=2)
    assert "blue" not in vocab.words and "circle" not in vocab.words
    assert vocab.encode("a purple circle")[1:-1] == [vocab.words.index("a"), UNK_ID, UNK_ID]
    assert vocab.decode(vocab.encode("a purple circle")) == "a"


def test_decode_stops_at_the_end_of_the_caption() -> None:
    vocab = Vocabulary.build(["a red circle"])
    red, circle = vocab.words.index("red"), vocab.words.index("circle")
    assert vocab.decode([red, EOS_ID, circle]) == "red"


def test_the_vocabulary_survives_json_and_refuses_one_without_its_specials() -> None:
    vocab = Vocabulary.build(["a green triangle"])
    assert Vocabulary.from_json(vocab.to_json()) == vocab
    with pytest.raises(ValueError, match="starts with"):
        Vocabulary.from_json({"words": ["a", "green"]})
