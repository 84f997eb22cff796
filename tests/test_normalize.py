"""Normalisation folds text the same way for messages and phrasings, and never repairs a real word into another."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from bot.normalize import fold
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
