"""Tests for the patient-safety check: the shipped vocabulary, safety_cases.yaml, and bad vocabulary files."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.safety import SafetyFinding, SafetyFormatError, SafetyRules, check, parse_rules

ROOT = Path(__file__).resolve().parent.parent
VOCABULARY = ROOT / "knowledge" / "safety.yaml"
CASES = yaml.safe_load((Path(__file__).parent / "safety_cases.yaml").read_text(encoding="utf-8"))["cases"]


def _document() -> dict[str, Any]:
    loaded = yaml.safe_load(VOCABULARY.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def rules() -> SafetyRules:
    return parse_rules(_document())


def _allowed_reasons(rules: SafetyRules) -> set[str]:
    return {"crisis"} | {f"symptom:{group.name}" for group in rules.symptoms}


def _case_id(case: dict[str, str]) -> str:
    return f"{case['expect']}:{case['text'][:60]}"


def test_the_shipped_vocabulary_parses(rules: SafetyRules) -> None:
    """knowledge/safety.yaml is valid and its temperature rule names one of its symptom groups."""
    assert rules.symptoms
    assert rules.temperature.group in {group.name for group in rules.symptoms}


def test_cases_are_well_formed() -> None:
    """Each case has text and an expectation of crisis, symptom or none, and no message appears twice."""
    texts = [case["text"].casefold() for case in CASES]
    assert len(texts) == len(set(texts))
    for case in CASES:
        assert set(case) <= {"text", "expect", "reason"}
        assert isinstance(case["text"], str) and case["text"].strip()
        assert case["expect"] in {"crisis", "symptom", "none"}
    assert len(CASES) >= 120


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_case(case: dict[str, str], rules: SafetyRules) -> None:
    """The message is recognised as a crisis, a symptom report, or neither, as the case says."""
    finding = check(case["text"], rules)
    assert (finding.kind if finding else "none") == case["expect"]
    if "reason" in case:
        assert finding is not None and finding.reason == case["reason"]


def test_every_symptom_group_is_exercised(rules: SafetyRules) -> None:
    """Each symptom group in the shipped vocabulary fires for at least one case: none is dead or untested."""
    fired = {finding.reason for case in CASES if (finding := check(case["text"], rules)) is not None}
    assert _allowed_reasons(rules) <= fired


def test_reasons_name_the_rule_group_never_the_message(rules: SafetyRules) -> None:
    """A finding's reason is "crisis" or "symptom:<group>", and never carries the patient's words."""
    allowed = _allowed_reasons(rules)
    for case in CASES:
        finding = check(case["text"], rules)
        assert finding is None or finding.reason in allowed
    for text in ("Mrs Quibblethwaite says her arm is swollen", "Quibblethwaite wants to kill himself"):
        finding = check(text, rules)
        assert finding is not None and "quibble" not in finding.reason.casefold()


_ODD_INPUTS = [
    "",
    " ",
    "\n\n\t",
    "?",
    "...",
    "a" * 100_000,
    "my arm is swollen and " * 5_000,
    "fever, " * 15_000,
    "38." * 30_000,
    "\x00\x01\x02\x1b[31m\x7f fever",
    "\ud800\udfff lone surrogates",
    "\u202e\u200f\u061c right-to-left marks: my port is red",
    "حرارة عالية وألم في الصدر",
    "体温が高い",
    "🔥🤒😷💉🩸" * 200,
    "".join(chr(ord(c) + 0xFEE0) if c != " " else c for c in "My arm is swollen"),  # full-width letters
    "\u01c5 \u00df \ufb01 \u0130 \u0131 \u1e9e",
    "999999999999999999999999.9999999999",
    "'''\"\"\"```",
    "* * * my * is *",
]


@pytest.mark.parametrize("text", _ODD_INPUTS, ids=range(len(_ODD_INPUTS)))
def test_odd_input_never_raises(text: str, rules: SafetyRules) -> None:
    """Empty, huge, control, emoji, full-width and right-to-left text are all answered without an error."""
    finding = check(text, rules)
    assert finding is None or finding.reason in _allowed_reasons(rules)


def test_a_report_late_in_a_long_paste_is_still_seen(rules: SafetyRules) -> None:
    """The check reads past the first few thousand characters, so a report after a long preamble counts."""
    text = "I wanted to ask about swimming with my port. " * 200 + "Also my arm is really swollen."
    assert check(text, rules) == SafetyFinding("symptom", "symptom:swelling")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_any_text_never_raises(rules: SafetyRules, text: str) -> None:
    """check() answers any text with a finding or None, and a finding's reason is always a rule group."""
    finding = check(text, rules)
    assert finding is None or finding.reason in _allowed_reasons(rules)


_CASE_WORDS = sorted({word for case in CASES for word in case["text"].split()})


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(_CASE_WORDS) | st.sampled_from([",", "?", ".", "!", "38.5", "not", "if"]), max_size=40
    )
)
def test_shuffled_case_words_never_raise(rules: SafetyRules, words: list[str]) -> None:
    """Nonsense made of real vocabulary (which reaches every rule) never raises and never leaks words."""
    text = " ".join(words)
    finding = check(text, rules)
    assert finding is None or finding.reason in _allowed_reasons(rules)


def test_check_is_fast(rules: SafetyRules) -> None:
    """A typical message takes well under a millisecond; the bound is loose so a slow CI does not flake."""
    texts = [case["text"] for case in CASES]
    for text in texts:
        check(text, rules)
    start = time.perf_counter()
    for text in texts:
        check(text, rules)
    per_message = (time.perf_counter() - start) / len(texts)
    assert per_message < 0.002


# ------------------------------------------------------------------------------------------------------------
# Bad vocabulary files: each mutation breaks a copy of the shipped document in one way staff might.

Mutation = Callable[[dict[str, Any]], object]


def _set(path: list[str | int], value: object) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        node: Any = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return mutate


def _delete(path: list[str]) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        node: Any = doc
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return mutate


def _append(path: list[str], value: object) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        node: Any = doc
        for key in path:
            node = node[key]
        node.append(value)

    return mutate


def _rename(path: list[str], new: str) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        node: Any = doc
        for key in path[:-1]:
            node = node[key]
        node[new] = node.pop(path[-1])

    return mutate


BAD_DOCUMENTS: list[tuple[str, Mutation, str, str]] = [
    # (what staff did, the change, the key_path reported, a fragment of the message)
    (
        "misspelt top-level key",
        _rename(["report_cues"], "report_cue"),
        "report_cue",
        'did you mean "report_cues"',
    ),
    ("misspelt group key", _rename(["symptoms", "fever", "terms"], "term"), "symptoms.fever.term", '"terms"'),
    (
        "unknown temperature key",
        _set(["temperature", "celcius"], {"from": 1, "to": 2}),
        "temperature.celcius",
        'did you mean "celsius"',
    ),
    (
        "a number where text belongs",
        _append(["symptoms", "fever", "terms"], 39),
        "symptoms.fever.terms.",
        "quotes",
    ),
    ("yes read as true", _append(["negation_cues"], True), "negation_cues.", "true/false"),
    (
        "a bare number for a list",
        _set(["symptoms", "fever", "terms"], 38),
        "symptoms.fever.terms",
        "not a number",
    ),
    ("one word instead of a list", _set(["past_cues"], "last week"), "past_cues", "list"),
    ("an empty list", _set(["crisis", "phrases"], []), "crisis.phrases", "empty"),
    ("an empty item", _append(["sites", "words"], None), "sites.words.", "empty"),
    ("a missing section", _delete(["ongoing_cues"]), "ongoing_cues", "missing"),
    (
        "a missing needs_site",
        _delete(["symptoms", "fever", "needs_site"]),
        "symptoms.fever.needs_site",
        "missing",
    ),
    (
        "needs_site as text",
        _set(["symptoms", "fever", "needs_site"], "yes"),
        "symptoms.fever.needs_site",
        "true or false",
    ),
    ("a phrase twice", _append(["symptoms", "fever", "terms"], "Fever"), "symptoms.fever.terms.", "twice"),
    ("a phrase twice once folded", _append(["report_cues"], "I've got"), "report_cues.", "reads the same"),
    ("a phrase of punctuation", _append(["past_cues"], "!!!"), "past_cues.", "no letters"),
    ("a wildcard first", _append(["report_cues"], "* is swollen"), "report_cues.", '"*"'),
    (
        "a phrase among single words",
        _append(["clause_breaks"], "as well as"),
        "clause_breaks.",
        "single word",
    ),
    ("a bad group name", _rename(["symptoms", "fever"], "Fever Group"), "symptoms.Fever Group", "lower-case"),
    ("symptoms not a mapping", _set(["symptoms"], ["fever"]), "symptoms", "named symptom groups"),
    (
        "temperature names no group",
        _set(["temperature", "group"], "fevr"),
        "temperature.group",
        'did you mean "fever"',
    ),
    (
        "temperature range reversed",
        _set(["temperature", "celsius"], {"from": 43, "to": 37.5}),
        "temperature.celsius",
        "lower",
    ),
    (
        "temperature bound as text",
        _set(["temperature", "celsius", "from"], "38"),
        "temperature.celsius.from",
        "number",
    ),
    (
        "near with one list",
        _set(["symptoms", "breathing", "near"], [["breath"]]),
        "symptoms.breathing.near",
        "two lists",
    ),
    (
        "a topic term also a term",
        _append(["symptoms", "infection", "topic_terms"], "looks infected"),
        "symptoms.infection.topic_terms.",
        "also in terms",
    ),
    ("the whole file a list", lambda doc: ["symptoms"], "", "group of keys"),
]


@pytest.mark.parametrize(
    ("mutation", "key_path", "fragment"),
    [(mutation, key_path, fragment) for _label, mutation, key_path, fragment in BAD_DOCUMENTS],
    ids=[label for label, *_rest in BAD_DOCUMENTS],
)
def test_bad_document_is_refused_with_its_place(mutation: Mutation, key_path: str, fragment: str) -> None:
    """parse_rules names where the problem is (key_path) and says, in plain words, what to do about it."""
    doc = copy.deepcopy(_document())
    replaced = mutation(doc)
    with pytest.raises(SafetyFormatError) as caught:
        parse_rules(replaced if replaced is not None else doc)
    assert caught.value.key_path.startswith(key_path) if key_path else caught.value.key_path == ""
    assert fragment in caught.value.message
    assert isinstance(caught.value, ValueError)


def test_rules_are_frozen_values(rules: SafetyRules) -> None:
    """The parsed vocabulary cannot be changed after loading, and equal files give equal rules."""
    with pytest.raises(AttributeError):
        rules.crisis = ()  # type: ignore[misc]
    assert isinstance(rules.symptoms, tuple) and isinstance(rules.inversion_words, frozenset)
    assert parse_rules(_document()) == rules


def test_a_staff_edit_takes_effect() -> None:
    """A word staff add to a group is recognised, spelled with capitals and an apostrophe as they typed it."""
    doc = _document()
    assert check("my port feels wonky", parse_rules(doc)) is None
    doc["symptoms"]["exposure"]["terms"].append("Feels WONKY")
    assert check("my port feels wonky", parse_rules(doc)) == SafetyFinding("symptom", "symptom:exposure")
