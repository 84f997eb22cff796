"""Answers are written at a reading level patients manage: Flesch-Kincaid grade 8 or below on average."""

from __future__ import annotations

import re

import pytest

from bot.knowledge import KnowledgeBase

_WORD = re.compile(r"[A-Za-z]+(?:'[a-z]+)?")
_SENTENCE = re.compile(r"[.!?]+(?:\s|$)")


def syllables(word: str) -> int:
    """Vowel groups, less a silent final e (the usual estimate; no dictionary needed offline)."""
    word = word.lower()
    groups = len(re.findall(r"[aeiouy]+", word))
    if word.endswith("e") and not word.endswith(("le", "ee")) and groups > 1:
        groups -= 1
    return max(1, groups)


def grade(text: str) -> float:
    """Flesch-Kincaid grade level: 0.39 words/sentence + 11.8 syllables/word - 15.59."""
    words = _WORD.findall(text)
    sentences = max(1, len(_SENTENCE.findall(text.strip() + " ")))
    return 0.39 * len(words) / sentences + 11.8 * sum(map(syllables, words)) / len(words) - 15.59


@pytest.mark.parametrize(("text", "low", "high"), [
    ("The cat sat on the mat.", -4, 1),
    ("Interventional radiologists utilise fluoroscopic guidance during implantation procedures.", 16, 30),
])
def test_the_measure_can_tell_easy_from_hard(text: str, low: float, high: float) -> None:
    assert low <= grade(text) <= high


def test_answers_average_grade_8_or_below(kb: KnowledgeBase) -> None:
    grades = {entry.id: grade(entry.answer) for entry in kb.entries}
    average = sum(grades.values()) / len(grades)
    hardest = sorted(grades.items(), key=lambda item: -item[1])[:3]
    assert average <= 8.0, f"average grade {average:.1f}; hardest: {hardest}"


def test_fixed_texts_are_plain(kb: KnowledgeBase) -> None:
    """The replies every patient sees (reminder, not covered, urgent, crisis, warning signs) stay plain too."""
    for name in ("care_team_reminder", "not_covered", "urgent", "crisis", "warning_signs", "empty_message"):
        text = re.sub(r"\{[a-z_]+\}", "them", kb.texts[name])
        assert grade(text) <= 8.0, f"{name}: grade {grade(text):.1f}"
