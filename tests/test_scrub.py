"""Scrubbing removes every identifier a patient may type and leaves the question readable."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from bot.scrub import MAX_KEPT_CHARS, scrub

CASES = yaml.safe_load((Path(__file__).parent / "cases" / "scrub.yaml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", CASES["replaced"], ids=lambda c: c["text"])
def test_identifiers_are_replaced(case: dict[str, str]) -> None:
    assert scrub(case["text"]) == case["expect"]


@pytest.mark.parametrize("text", CASES["kept"])
def test_ordinary_text_is_kept(text: str) -> None:
    assert scrub(text) == text


_NUMBERISH = st.text(alphabet="0123456789 -.()/+@abc", max_size=60)


@given(st.one_of(_NUMBERISH, st.text(max_size=200)))
def test_no_long_digit_run_survives(text: str) -> None:
    """Whatever the patient types, no run of 5 or more digits is kept, even spaced or dashed in threes."""
    kept = scrub(text)
    assert re.search(r"\d{5,}", kept) is None
    assert re.search(r"\d{3}[ -]\d{3}[ -]\d{4}", kept) is None
    assert scrub(kept) == kept


def test_long_messages_are_cut() -> None:
    assert len(scrub("why " * 1000)) == MAX_KEPT_CHARS
