"""Normalisation folds text the same way for messages and phrasings, and never repairs a real word into another."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from bot.normalize import COMMON_WORD, english_frequency, english_words, fold
from bot.replies import Brain

CASES = yaml.safe_load((Path(__file__).parent / "cases" / "normalize.yaml").read_text())


@pytest.mark.parametrize("case", CASES["fold"], ids=lambda c: c["text"])
def test_fold(case: dict[str, str]) -> None:
    assert fold(case["text"]) == case["expect"]


@pytest.mark.parametrize("case", CASES["tokens"], ids=lambda c: c["text"])
def test_tokens(brain: Brain, case: dict[str, object]) -> None:
    tokens = brain.index.lexicon.tokens(str(case["text"]))
    for token in case.get("has", []):  # type: ignore[attr-defined]
        assert token in tokens, tokens
    for token in case.get("lacks", []):  # type: ignore[attr-defined]
        assert token not in tokens, tokens


@given(st.text(max_size=300))
def test_fold_is_idempotent_and_plain(text: str) -> None:
    """Folding twice changes nothing, and the result holds only lower-case letters, digits, dots and spaces."""
    once = fold(text)
    assert fold(once) == once
    assert all(ch.isalnum() or ch in ". " for ch in once)


def test_analysed_texts_are_kept_the_same_and_bounded(brain: Brain) -> None:
    """A text analysed again gives the same analysis, and the kept texts never outgrow ANALYSED_KEPT, however many
    different messages come (a long-running bot must not grow with its traffic)."""
    from bot.normalize import ANALYSED_KEPT

    lexicon = brain.index.lexicon
    first = lexicon.analyse("can i swimm with my port")
    for number in range(ANALYSED_KEPT + 10):
        lexicon.analyse(f"message number {number} about my port")
        assert len(lexicon._analysed) <= ANALYSED_KEPT
    assert lexicon.analyse("can i swimm with my port") == first
    assert lexicon.tokens("can i swimm with my port") == first.tokens


def _listed() -> dict[str, int]:
    """pyspellchecker's English list read the plain way: one JSON dictionary."""
    import gzip
    import json
    import pkgutil

    data = pkgutil.get_data("spellchecker", "resources/en.json.gz")
    assert data is not None
    listed: dict[str, int] = json.loads(gzip.decompress(data))
    return listed


def test_the_compact_english_word_list_holds_exactly_the_listed_words() -> None:
    """Every listed word is found, its near misses (a letter more, less or moved) only when listed themselves, and
    'very common' agrees with the counts: the run-together rows lose and invent nothing."""
    listed = _listed()
    words = english_words()
    alphabetic = {word for word in listed if word.isalpha()}
    assert len(words) == len(alphabetic)
    assert all(word in words for word in alphabetic)
    near = {variant for word in list(alphabetic)[::7]
            for variant in (word + "s", word[1:], word[:-1], word[1:] + word[0], word.upper())}
    assert all((variant in words) == (variant in alphabetic) for variant in near)
    assert all(words.common(word) == (listed[word] >= COMMON_WORD) for word in alphabetic)
    assert "" not in words and "a's" not in words and 3 not in words


@pytest.mark.parametrize("word, frequency", [("the", COMMON_WORD), ("tattoo", 1), ("abbé", 1), ("portacath", 0),
                                             ("xqzt", 0)])
def test_english_frequency(word: str, frequency: int) -> None:
    assert english_frequency(word) == frequency
