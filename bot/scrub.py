"""Replace the identifiers a patient may type (phone numbers, e-mail addresses, dates, long numbers, links, handles)
with placeholders, so that the text kept for staff says what was asked but not who asked it."""

from __future__ import annotations

import re

# Kept text is for reading what was asked; nothing past this length helps that, and less kept is less to leak.
MAX_KEPT_CHARS = 500

# Only endings that are not also English words, so "my port.It hurts" stays text.
_TLDS = "com|org|net|info|io|uk|de|fr|nl|eu|gov|nhs|edu|ie|ch|au|ca|ly|ru|pl|pt|se|dk"
_URL = re.compile(
    r"(?i)\b(?:https?://|www\.)\S+"
    rf"|\b(?:[a-z0-9-]+\.)+(?:{_TLDS})\b(?:/\S*)?"
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_HANDLE = re.compile(r"(?<![\w@])@[A-Za-z_][\w@]+")

# "May" only with a capital letter: "I may 2 ..." is not a date, "May 2" is.
_MONTH = (r"(?:(?i:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|june?|july?|aug(?:ust)?|sept?(?:ember)?"
          r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)|May|MAY)\.?")
_ORDINAL = r"\d{1,2}(?i:st|nd|rd|th)?"
_YEAR = r"(?:,?\s*(?:'\d{2}|\d{4}))"
_WORD_DATE = re.compile(
    rf"\b{_ORDINAL}\s+(?i:of\s+)?{_MONTH}{_YEAR}?(?!\w)"   # 12 March 2026, 3rd of May
    rf"|\b{_MONTH}\s+{_ORDINAL}\b{_YEAR}?(?!\w)"          # March 12th, March 12, 2026
)
# 12/03/2026, 2026-03-12, 12.3.26; not a piece of a longer dotted or dashed number (a phone number).
_NUMERIC_DATE = re.compile(r"(?<![\d./-])\d{1,4}([./-])\d{1,2}\1\d{1,4}(?![\d]|[./-]\d)")

# A run of digits with the separators phone numbers and record numbers are written with.
_DIGITS = re.compile(r"(?<![\w+])(?:\+|\b00)?\(?\d(?:[\d().-]|[ \u00a0](?=[\d(]))*\d\)?")
_LONG_RUN = re.compile(r"\d{5,}")


def scrub(text: str) -> str:
    """The text with identifiers replaced by <url>, <email>, <handle>, <date>, <phone> and <number>;
    ordinary short numbers ("38.5", "2 weeks") stay."""
    text = text[:MAX_KEPT_CHARS]
    for _ in range(3):  # a replacement can expose another identifier ("12345@name"): repeat until nothing changes
        scrubbed = _once(text)
        if scrubbed == text:
            break
        text = scrubbed
    return text


def _once(text: str) -> str:
    text = _EMAIL.sub("<email>", text)
    text = _URL.sub("<url>", text)
    text = _HANDLE.sub("<handle>", text)
    text = _WORD_DATE.sub("<date>", text)
    text = _NUMERIC_DATE.sub("<date>", text)
    text = _DIGITS.sub(_number, text)
    return _LONG_RUN.sub("<number>", text)


def _number(found: re.Match[str]) -> str:
    run = found.group()
    digits = sum(ch.isdigit() for ch in run)
    if digits < 5:
        return run
    looks_dialled = run.startswith(("+", "00", "0", "(")) or any(ch in run for ch in "()-")
    return "<phone>" if digits >= 7 and looks_dialled else "<number>"
