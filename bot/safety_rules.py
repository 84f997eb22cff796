"""The safety vocabulary: parsed from staff-edited YAML into frozen, precompiled rules (no checking here)."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from rapidfuzz.distance import OSA, Levenshtein

from bot.normalize import fold

# Five times Telegram's longest message; past it is a paste, not something a person is telling us now.
MAX_SAFETY_CHARS = 20_000
# fold() looks at 2 400 characters at a time, so longer pieces are cut at spaces into chunks below that.
_CHUNK_CHARS = 2_000
# A report cue or a negation reaches this many words ahead ("i have had a really bad fever").
_CUE_REACH = 5
# Crisis language is lifted only by a negation at most one word before it ("not suicidal", "never felt so").
_CRISIS_NEGATION_REACH = 2
# The two words of a `near` pair may have this many words between them ("heart feels like it is racing").
_NEAR_GAP = 3
# A fear word reaches this far onto a topic word ("worried about blood clots").
_FEAR_REACH = 3
# A short comma part with no report cue of its own ("chills or sweats") continues the part before it.
_CONTINUATION_WORDS = 4
# Typo repair looks at vocabulary words of this many letters or more, and at message words one letter shorter.
_FUZZY_MIN = 6
_MAX_REPAIR_CACHE = 50_000
_WILDCARD = "*"
_VOWELS = frozenset("aeiouy")

# A sentence ends at . ! ? ; … or a line break, but "38.5" keeps its decimal point.
_SENTENCE_END = re.compile(r"[!?;\n\r\u2026\u3002\uff01\uff1f\u061f]+|\.(?!\d)|(?<!\d)\.")
# Inside a sentence a comma, bracket, quote or a dash set off by spaces starts a new part.
_CLAUSE_MARK = re.compile(r"[,()\[\]{}\"\u201c\u201d\u060c]|\s-+\s|[\u2013\u2014]")
_DECIMAL_COMMA = re.compile(r"(?<=\d),(?=\d)")
_NUMBER = re.compile(r"^(\d{2,3}(?:\.\d{1,2})?)([a-z]*)$")

# Kinds of symptom match. A temperature reading ("38.3") reports even inside a question; a round number ("38")
# may be a threshold someone asks about.
TERM, TOPIC, NUMBER, READING = "term", "topic", "number", "reading"
# The two halves of a symptom group's `near` pair ("heart" ... "racing").
NEAR_SUBJECT, NEAR_STATE = "near_subject", "near_state"


class SafetyFormatError(ValueError):
    """A problem in the safety vocabulary, with the place it is at and what to do about it."""

    def __init__(self, message: str, key_path: str) -> None:
        super().__init__(message)
        self.message = message
        self.key_path = key_path


@dataclass(frozen=True, slots=True)
class SafetyFinding:
    """Why a message needs the care-team reply: which rule group fired, never the message's own words."""

    kind: Literal["crisis", "symptom"]
    reason: str


Phrase = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SymptomGroup:
    """One named group of symptom words."""

    name: str
    terms: tuple[Phrase, ...]
    topic_terms: tuple[Phrase, ...]
    near: tuple[tuple[Phrase, ...], tuple[Phrase, ...]] | None
    needs_site: bool


@dataclass(frozen=True, slots=True)
class TemperatureRule:
    """When a number in a message is a temperature reading, and which symptom group it reports."""

    group: str
    celsius: tuple[float, float]
    fahrenheit: tuple[float, float]
    celsius_units: frozenset[str]
    fahrenheit_units: frozenset[str]
    either_units: frozenset[str]
    words: frozenset[str]


@dataclass(frozen=True, slots=True, repr=False)
class SafetyRules:
    """The staff-edited safety vocabulary, folded the way messages are, with its lookup table built once."""

    symptoms: tuple[SymptomGroup, ...]
    temperature: TemperatureRule
    crisis: tuple[Phrase, ...]
    site_words: tuple[Phrase, ...]
    site_references: tuple[Phrase, ...]
    report_cues: tuple[Phrase, ...]
    ongoing_cues: tuple[Phrase, ...]
    question_cues: tuple[Phrase, ...]
    openers: tuple[Phrase, ...]
    inversion_words: frozenset[str]
    general_cues: tuple[Phrase, ...]
    hypothetical_cues: tuple[Phrase, ...]
    not_hypothetical: tuple[Phrase, ...]
    now_cues: tuple[Phrase, ...]
    fear_cues: tuple[Phrase, ...]
    future_cues: tuple[Phrase, ...]
    negation_cues: tuple[Phrase, ...]
    negation_exceptions: tuple[Phrase, ...]
    past_cues: tuple[Phrase, ...]
    resolved_cues: tuple[Phrase, ...]
    not_symptoms: tuple[Phrase, ...]
    anaphora: tuple[Phrase, ...]
    clause_breaks: frozenset[str]
    real_words: frozenset[str]
    _compiled: _Compiled = field(init=False, compare=False, repr=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_compiled", _Compiled(self))

    def __repr__(self) -> str:
        groups = ", ".join(group.name for group in self.symptoms)
        return f"SafetyRules(symptoms=[{groups}], crisis={len(self.crisis)} phrases)"

    def cue_lists(self) -> dict[str, tuple[Phrase, ...]]:
        """Every phrase list other than the symptom terms, by the kind of match it makes."""
        return {
            "crisis": self.crisis,
            "site": self.site_words,
            "reference": self.site_references,
            "report": self.report_cues,
            "ongoing": self.ongoing_cues,
            "question": self.question_cues,
            "opener": self.openers,
            "general": self.general_cues,
            "hypothetical": self.hypothetical_cues,
            "not_hypothetical": self.not_hypothetical,
            "now": self.now_cues,
            "fear": self.fear_cues,
            "future": self.future_cues,
            "negation": self.negation_cues,
            "exception": self.negation_exceptions,
            "past": self.past_cues,
            "resolved": self.resolved_cues,
            "not_symptom": self.not_symptoms,
            "anaphora": self.anaphora,
        }


# ------------------------------------------------------------------------------------------------------------
# Finding phrases and repairing typos.


@dataclass(frozen=True, slots=True)
class _Match:
    start: int
    end: int
    label: str = ""


_NO_MATCHES: tuple[_Match, ...] = ()
_Found = Mapping[str, Sequence[_Match]]


class _PhraseIndex:
    """Every vocabulary phrase, keyed by its first word, so one pass over a message finds all of them."""

    __slots__ = ("_by_first",)

    def __init__(self, entries: Iterable[tuple[Phrase, str, str]]) -> None:
        by_first: dict[str, list[tuple[Phrase, bool, str, str]]] = {}
        for words, kind, label in entries:
            by_first.setdefault(words[0], []).append((words, _WILDCARD in words, kind, label))
        self._by_first = {
            first: tuple(sorted(found, key=lambda entry: -len(entry[0]))) for first, found in by_first.items()
        }

    def scan(self, tokens: tuple[str, ...]) -> dict[str, list[_Match]]:
        """Every occurrence of every phrase, by kind, in word order and longest first at each word."""
        found: dict[str, list[_Match]] = {}
        size = len(tokens)
        for start, token in enumerate(tokens):
            for words, wild, kind, label in self._by_first.get(token, ()):
                end = start + len(words)
                if end > size:
                    continue
                if wild:
                    if not all(w == _WILDCARD or w == tokens[start + i] for i, w in enumerate(words)):
                        continue
                elif tokens[start:end] != words:
                    continue
                found.setdefault(kind, []).append(_Match(start, end, label))
        return found


class _Compiled:
    """The lookup table for one SafetyRules, and a bounded cache of typo repairs."""

    def __init__(self, rules: SafetyRules) -> None:
        entries: list[tuple[Phrase, str, str]] = []
        self.needs_site = {rules.temperature.group: False}
        for group in rules.symptoms:
            self.needs_site[group.name] = group.needs_site
            entries += [(words, TERM, group.name) for words in group.terms]
            entries += [(words, TOPIC, group.name) for words in group.topic_terms]
            if group.near is not None:
                entries += [(words, NEAR_SUBJECT, group.name) for words in group.near[0]]
                entries += [(words, NEAR_STATE, group.name) for words in group.near[1]]
        for kind, phrases in rules.cue_lists().items():
            entries += [(words, kind, "") for words in phrases]
        self.index = _PhraseIndex(entries)
        self.inversion_words = rules.inversion_words
        self.clause_breaks = rules.clause_breaks
        self.temperature = rules.temperature
        self.real_words = rules.real_words
        self.vocabulary = frozenset(word for words, _kind, _label in entries for word in words)
        # Slips are repaired only towards symptom, crisis and site words of six letters or more: short words
        # and cue words are where a repair would turn one real word into another.
        targets: dict[str, set[str]] = {}
        for words, kind, _label in entries:
            if kind in (TERM, TOPIC, NEAR_SUBJECT, NEAR_STATE, "crisis", "site"):
                for word in words:
                    if len(word) >= _FUZZY_MIN and word.isalpha():
                        targets.setdefault(word[0], set()).add(word)
        self.fuzzy_targets = {first: tuple(sorted(words)) for first, words in targets.items()}
        self.repairs: dict[str, str] = {}

    def repair(self, word: str) -> str:
        """The vocabulary word a slip of the keyboard most likely meant, or the word itself."""
        if (
            word in self.vocabulary
            or len(word) < _FUZZY_MIN - 1
            or word in self.real_words
            or not word.isalpha()
        ):
            return word
        cached = self.repairs.get(word)
        if cached is not None:
            return cached
        best, best_distance = word, 3
        for target in self.fuzzy_targets.get(word[0], ()):
            if abs(len(target) - len(word)) > 2:
                continue
            limit = 2 if len(target) >= 9 and len(word) >= 8 else 1
            distance = OSA.distance(word, target, score_cutoff=limit)
            if distance <= limit and distance < best_distance and _plausible_slip(word, target):
                best, best_distance = target, distance
        if len(self.repairs) < _MAX_REPAIR_CACHE:
            self.repairs[word] = best
        return best


def _plausible_slip(word: str, target: str) -> bool:
    """Whether the edits look like slips of the keyboard rather than a different word.

    Letters added, dropped or swapped with a neighbour, or one vowel for another, are slips; one consonant for
    another mostly makes another real word ("leaking" and "leaning", "infection" and "intention")."""
    for op in Levenshtein.editops(word, target):
        if op.tag != "replace":
            continue
        src, dest = op.src_pos, op.dest_pos
        a, b = word[src], target[dest]
        swapped = (
            src + 1 < len(word) and dest + 1 < len(target) and word[src + 1] == b and target[dest + 1] == a
        ) or (src > 0 and dest > 0 and word[src - 1] == b and target[dest - 1] == a)
        if not swapped and not (a in _VOWELS and b in _VOWELS):
            return False
    return True


# ------------------------------------------------------------------------------------------------------------
# Reading the staff file.

_TOP_KEYS = (
    "symptoms",
    "temperature",
    "crisis",
    "sites",
    "report_cues",
    "ongoing_cues",
    "question_cues",
    "openers",
    "inversion_words",
    "general_cues",
    "hypothetical_cues",
    "not_hypothetical",
    "now_cues",
    "fear_cues",
    "future_cues",
    "negation_cues",
    "negation_exceptions",
    "past_cues",
    "resolved_cues",
    "not_symptoms",
    "anaphora",
    "clause_breaks",
    "real_words",
)
_GROUP_KEYS = ("terms", "topic_terms", "near", "needs_site")
_TEMPERATURE_KEYS = (
    "group",
    "celsius",
    "fahrenheit",
    "celsius_units",
    "fahrenheit_units",
    "either_units",
    "words",
)
_RANGE_KEYS = ("from", "to")
_SITE_KEYS = ("words", "references")
_CRISIS_KEYS = ("phrases",)
_GROUP_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def parse_rules(doc: object) -> SafetyRules:
    """The safety vocabulary from the loaded YAML document; SafetyFormatError names the place at fault."""
    top = _mapping(doc, "", _TOP_KEYS, _TOP_KEYS)
    groups = _groups(top["symptoms"])
    crisis = _mapping(top["crisis"], "crisis", _CRISIS_KEYS, _CRISIS_KEYS)
    sites = _mapping(top["sites"], "sites", _SITE_KEYS, _SITE_KEYS)
    return SafetyRules(
        symptoms=groups,
        temperature=_temperature(top["temperature"], [group.name for group in groups]),
        crisis=_phrases(crisis["phrases"], "crisis.phrases"),
        site_words=_phrases(sites["words"], "sites.words"),
        site_references=_phrases(sites["references"], "sites.references"),
        report_cues=_phrases(top["report_cues"], "report_cues"),
        ongoing_cues=_phrases(top["ongoing_cues"], "ongoing_cues"),
        question_cues=_phrases(top["question_cues"], "question_cues"),
        openers=_phrases(top["openers"], "openers"),
        inversion_words=_words(top["inversion_words"], "inversion_words"),
        general_cues=_phrases(top["general_cues"], "general_cues"),
        hypothetical_cues=_phrases(top["hypothetical_cues"], "hypothetical_cues"),
        not_hypothetical=_phrases(top["not_hypothetical"], "not_hypothetical"),
        now_cues=_phrases(top["now_cues"], "now_cues"),
        fear_cues=_phrases(top["fear_cues"], "fear_cues"),
        future_cues=_phrases(top["future_cues"], "future_cues"),
        negation_cues=_phrases(top["negation_cues"], "negation_cues"),
        negation_exceptions=_phrases(top["negation_exceptions"], "negation_exceptions"),
        past_cues=_phrases(top["past_cues"], "past_cues"),
        resolved_cues=_phrases(top["resolved_cues"], "resolved_cues"),
        not_symptoms=_phrases(top["not_symptoms"], "not_symptoms"),
        anaphora=_phrases(top["anaphora"], "anaphora"),
        clause_breaks=_words(top["clause_breaks"], "clause_breaks"),
        real_words=_words(top["real_words"], "real_words"),
    )


def _groups(value: object) -> tuple[SymptomGroup, ...]:
    if not isinstance(value, dict) or not value:
        raise SafetyFormatError(
            f"must be named symptom groups (fever: {{terms: [...], needs_site: ...}}), not {_kind_of(value)}",
            "symptoms",
        )
    groups: list[SymptomGroup] = []
    for name, body in value.items():
        path = f"symptoms.{name}"
        if not isinstance(name, str) or not _GROUP_NAME.match(name):
            raise SafetyFormatError(
                "a group name must be lower-case letters, digits and _ (like chest_pain)", path
            )
        found = _mapping(body, path, _GROUP_KEYS, ("terms", "needs_site"))
        has_topic = "topic_terms" in found
        terms = _phrases(found["terms"], f"{path}.terms", allow_empty=has_topic)
        topic = _phrases(found["topic_terms"], f"{path}.topic_terms") if has_topic else ()
        for i, words in enumerate(topic):
            if words in terms:
                raise SafetyFormatError(
                    f'"{" ".join(words)}" is also in terms; keep it in one of the two lists',
                    f"{path}.topic_terms.{i}",
                )
        near = _near(found["near"], f"{path}.near") if "near" in found else None
        groups.append(
            SymptomGroup(name, terms, topic, near, _flag(found["needs_site"], f"{path}.needs_site"))
        )
    return tuple(groups)


def _near(value: object, path: str) -> tuple[tuple[Phrase, ...], tuple[Phrase, ...]]:
    if not isinstance(value, list) or len(value) != 2:
        raise SafetyFormatError(
            f"{path} must be two lists, one under the other, each starting with - (not {_kind_of(value)})",
            path,
        )
    return _phrases(value[0], f"{path}.0"), _phrases(value[1], f"{path}.1")


def _temperature(value: object, group_names: Sequence[str]) -> TemperatureRule:
    found = _mapping(value, "temperature", _TEMPERATURE_KEYS, _TEMPERATURE_KEYS)
    group = found["group"]
    if not isinstance(group, str) or group not in group_names:
        close = difflib.get_close_matches(str(group), group_names, n=1)
        hint = f'; did you mean "{close[0]}"?' if close else ""
        raise SafetyFormatError(
            f"must name one of the symptom groups ({', '.join(group_names)}){hint}", "temperature.group"
        )
    return TemperatureRule(
        group=group,
        celsius=_range(found["celsius"], "temperature.celsius"),
        fahrenheit=_range(found["fahrenheit"], "temperature.fahrenheit"),
        celsius_units=_words(found["celsius_units"], "temperature.celsius_units"),
        fahrenheit_units=_words(found["fahrenheit_units"], "temperature.fahrenheit_units"),
        either_units=_words(found["either_units"], "temperature.either_units"),
        words=_words(found["words"], "temperature.words"),
    )


def _mapping(value: object, path: str, keys: Sequence[str], required: Sequence[str]) -> Mapping[str, object]:
    if not isinstance(value, dict):
        where = f"{path} must" if path else "The file must"
        raise SafetyFormatError(
            f"{where} be a group of keys ({', '.join(keys)}), not {_kind_of(value)}", path
        )
    for key in value:
        if not isinstance(key, str) or key not in keys:
            close = difflib.get_close_matches(str(key), keys, n=1)
            hint = (
                f'; did you mean "{close[0]}"?' if close else f"; the keys allowed here are {', '.join(keys)}"
            )
            raise SafetyFormatError(f'"{key}" is not a known key{hint}', _join(path, str(key)))
    for key in required:
        if key not in value:
            raise SafetyFormatError(
                f'"{key}" is missing; every section of the file is needed', _join(path, key)
            )
    return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _phrases(
    value: object, path: str, *, allow_empty: bool = False, single_words: bool = False
) -> tuple[Phrase, ...]:
    if not isinstance(value, list):
        raise SafetyFormatError(
            f"{path} must be a list of words or phrases in square brackets, not {_kind_of(value)}"
            + ("; put each word in quotes inside [ ]" if isinstance(value, int | float | bool | str) else ""),
            path,
        )
    if not value and not allow_empty:
        raise SafetyFormatError(f"{path} is an empty list; add at least one word or phrase", path)
    seen: dict[Phrase, str] = {}
    out: list[Phrase] = []
    for i, item in enumerate(value):
        where = f"{path}.{i}"
        if not isinstance(item, str):
            raise SafetyFormatError(f"item {i + 1} of {path} {_not_text(item)}", where)
        words = _fold_phrase(item)
        if not words or all(word == _WILDCARD for word in words):
            raise SafetyFormatError(
                f'"{item}" in {path} has no letters or digits to look for; write a word', where
            )
        if words[0] == _WILDCARD:
            raise SafetyFormatError(
                f'"{item}" in {path} starts with "*"; start the phrase with a real word', where
            )
        if single_words and len(words) != 1:
            raise SafetyFormatError(f'"{item}" in {path} must be a single word', where)
        if words in seen:
            same = "twice" if seen[words] == item else f'twice: "{item}" reads the same as "{seen[words]}"'
            raise SafetyFormatError(f"{path} lists a phrase {same}; remove one", where)
        seen[words] = item
        out.append(words)
    return tuple(out)


def _fold_phrase(item: str) -> Phrase:
    """A phrase folded the way messages are, keeping each "*" as a one-word wildcard."""
    words: list[str] = []
    for i, part in enumerate(item.split(_WILDCARD)):
        if i:
            words.append(_WILDCARD)
        words += fold(part).split()
    return tuple(words)


def _words(value: object, path: str) -> frozenset[str]:
    return frozenset(words[0] for words in _phrases(value, path, single_words=True))


def _flag(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        raise SafetyFormatError(f"{path} must be true or false, not {_kind_of(value)}", path)
    return value


def _range(value: object, path: str) -> tuple[float, float]:
    found = _mapping(value, path, _RANGE_KEYS, _RANGE_KEYS)
    bounds: list[float] = []
    for key in _RANGE_KEYS:
        number = found[key]
        if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
            raise SafetyFormatError(
                f"{path}.{key} must be a number such as 38 or 37.5, not {_kind_of(number)}", _join(path, key)
            )
        bounds.append(float(number))
    if bounds[0] >= bounds[1]:
        raise SafetyFormatError(f"{path}: from must be lower than to", path)
    return bounds[0], bounds[1]


def _kind_of(value: object) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "true/false (YAML reads yes, no, on and off that way)"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, dict):
        return "a group of keys"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a single piece of text"
    return type(value).__name__


def _not_text(item: object) -> str:
    if item is None:
        return "is empty; remove the stray comma or write the word"
    if isinstance(item, bool):
        return (
            'is true/false, not text (YAML reads yes, no, on and off that way); put it in quotes, like "yes"'
        )
    if isinstance(item, int | float):
        return f'is a number, not text; put it in quotes, like "{item}"'
    return f"is {_kind_of(item)}, not text; write a word or phrase"


