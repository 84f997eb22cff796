"""Recognise, before any FAQ matching, a message reporting a worrying symptom now or using crisis language."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from bot.normalize import fold
from bot.safety_rules import (
    _CHUNK_CHARS,
    _CLAUSE_MARK,
    _CONTINUATION_WORDS,
    _CRISIS_NEGATION_REACH,
    _CUE_REACH,
    _DECIMAL_COMMA,
    _FEAR_REACH,
    _NEAR_GAP,
    _NO_MATCHES,
    _NUMBER,
    _SENTENCE_END,
    MAX_SAFETY_CHARS,
    NEAR_STATE,
    NEAR_SUBJECT,
    NUMBER,
    READING,
    TERM,
    TOPIC,
    SafetyFinding,
    SafetyFormatError,
    SafetyRules,
    TemperatureRule,
    _Compiled,
    _Found,
    _Match,
    parse_rules,
)

__all__ = ["SafetyFinding", "SafetyFormatError", "SafetyRules", "check", "parse_rules"]

# ------------------------------------------------------------------------------------------------------------
# Checking a message.


_SUBJECTS = frozenset({"i", "we", "you", "they"})
_POSSESSIVES = frozenset({"my", "mine", "his", "her", "their", "our"})


@dataclass(frozen=True, slots=True)
class _Clause:
    """One part of a sentence: its folded and repaired words, and every vocabulary match in them."""

    tokens: tuple[str, ...]
    sentence: int
    found: _Found

    def get(self, kind: str) -> Sequence[_Match]:
        return self.found.get(kind, _NO_MATCHES)


@dataclass(frozen=True, slots=True)
class _Facts:
    """What one part of a sentence says on its own, before the parts around it are taken into account."""

    terms: tuple[_Match, ...]
    anaphora: bool
    has_site: bool
    reports: tuple[_Match, ...]
    # The report cues other than a bare "my", "her"...: in a question, a possessive names whose port it would be
    # ("can the line in my port get clogged?"), it does not tell of a complication happening.
    telling: tuple[_Match, ...]
    fears: Sequence[_Match]
    looks_ahead: bool
    ongoing: bool
    past: bool
    resolved: bool
    asking: bool
    hypothetical_from: int
    negations: tuple[int, ...]
    barriers: tuple[int, ...]
    independent: bool
    size: int


@dataclass(frozen=True, slots=True)
class _Frame:
    """What a part of a sentence hands on to the part after it ("if I get a fever, chills or sweats")."""

    asking: bool = False
    hypothetical: bool = False
    negated: bool = False
    past: bool = False


def check(text: str, rules: SafetyRules) -> SafetyFinding | None:
    """Crisis language, or a report of a worrying symptom now, or None for anything else; never raises."""
    if not isinstance(text, str) or not text.strip():
        return None
    compiled = rules._compiled
    clauses = list(_clauses(text, compiled))
    if any(_crisis(clause) for clause in clauses):
        return SafetyFinding("crisis", "crisis")
    group = _symptom(clauses, compiled)
    return None if group is None else SafetyFinding("symptom", f"symptom:{group}")


def _clauses(text: str, compiled: _Compiled) -> Iterator[_Clause]:
    text = _DECIMAL_COMMA.sub(".", text[:MAX_SAFETY_CHARS])
    for number, sentence in enumerate(_SENTENCE_END.split(text)):
        for piece in _CLAUSE_MARK.split(sentence):
            for chunk in _chunks(piece):
                tokens: list[str] = []
                for word in fold(chunk).split():
                    if word in compiled.clause_breaks:
                        if tokens:
                            yield _clause(tokens, number, compiled)
                        tokens = []
                    else:
                        tokens.append(compiled.repair(word))
                if tokens:
                    yield _clause(tokens, number, compiled)


def _clause(words: list[str], sentence: int, compiled: _Compiled) -> _Clause:
    tokens = tuple(words)
    found = compiled.index.scan(tokens)
    numbers = _temperatures(tokens, compiled.temperature)
    if numbers:
        found.setdefault(NUMBER, []).extend(numbers)
    return _Clause(tokens, sentence, found)


def _chunks(piece: str) -> Iterator[str]:
    while len(piece) > _CHUNK_CHARS:
        cut = piece.rfind(" ", 0, _CHUNK_CHARS)
        cut = cut if cut > 0 else _CHUNK_CHARS
        yield piece[:cut]
        piece = piece[cut:]
    yield piece


def _temperatures(tokens: Sequence[str], rule: TemperatureRule) -> list[_Match]:
    """Numbers that read as a temperature: "38.5", "39 degrees", "101f", "temp of 38"."""
    found: list[_Match] = []
    for i, token in enumerate(tokens):
        if not token[:1].isdigit():
            continue
        parsed = _NUMBER.match(token)
        if parsed is None:
            continue
        value, suffix = float(parsed.group(1)), parsed.group(2)
        unit = suffix or (tokens[i + 1] if i + 1 < len(tokens) else "")
        in_c = rule.celsius[0] <= value <= rule.celsius[1]
        in_f = rule.fahrenheit[0] <= value <= rule.fahrenheit[1]
        if unit in rule.celsius_units:
            hit = in_c
        elif unit in rule.fahrenheit_units:
            hit = in_f
        elif unit in rule.either_units:
            hit = in_c or in_f
        elif suffix:
            hit = False
        else:
            near = (*tokens[max(0, i - 4) : i], *tokens[i + 1 : i + 5])
            # "38.5" alone is a temperature; a whole "38" needs a word near it ("temp of 38"): it may be age.
            one_decimal = "." in token and len(token.split(".")[1]) == 1
            hit = ((in_c or in_f) and any(word in rule.words for word in near)) or (in_c and one_decimal)
        if hit:
            found.append(_Match(i, i + 1, rule.group))
    return found


def _is_reading(token: str) -> bool:
    """A reading like "38.3" rather than a threshold like "38" or "37.5"."""
    parsed = _NUMBER.match(token)
    _whole, _, decimals = parsed.group(1).partition(".") if parsed else ("", "", "")
    return len(decimals) == 1 and decimals not in "05"


def _crisis(clause: _Clause) -> bool:
    found = clause.get("crisis")
    if not found:
        return False
    negations = _negations(clause, found)
    return any(not _denied(match, negations, (), _CRISIS_NEGATION_REACH) for match in found)


def _negations(clause: _Clause, shields: Sequence[_Match]) -> tuple[int, ...]:
    """Where a negation really denies: not inside a symptom, crisis phrase or exception ("will not stop")."""
    exempt = [*shields, *clause.get("exception")]
    return tuple(m.end for m in clause.get("negation") if not _overlaps(m, exempt))


def _denied(term: _Match, negations: Sequence[int], barriers: Sequence[int], reach: int) -> bool:
    """Whether a negation ends fewer than `reach` words before the term, with no new subject in between.

    In "not red and it hurts", "it" starts a new statement, so the negation does not reach "hurts"."""
    return any(
        0 <= term.start - end < reach and not any(end <= b < term.start for b in barriers)
        for end in negations
    )


def _overlaps(match: _Match, spans: Iterable[_Match], *, unless_within: bool = False) -> bool:
    """Whether the match shares a word with any span; with unless_within, spans wholly inside it do not count
    ("had a fever" holds the symptom "a fever" but is still a past cue)."""
    return any(
        span.start < match.end
        and match.start < span.end
        and not (unless_within and match.start <= span.start and span.end <= match.end)
        for span in spans
    )


def _starts_with(clause: _Clause, kind: str) -> _Match | None:
    """The match of `kind` that opens the part, after small opening words ("so", "hi", "also")."""
    openers = {m.start: m.end for m in reversed(clause.get("opener"))}
    start = 0
    while start in openers and openers[start] < len(clause.tokens):
        start = openers[start]
    return next((m for m in clause.get(kind) if m.start == start), None)


def _symptom(clauses: Sequence[_Clause], compiled: _Compiled) -> str | None:
    """The first symptom group reported now, reading each part of a sentence with the parts around it.

    A part that asks, imagines ("if"), denies ("no") or looks back ("last month") hands that on to a short
    part after it ("no fever, chills or sweats"); one that asks or imagines hands it on to every later part of
    the sentence that has no report cue of its own. A part saying something is over also covers the parts
    before it ("my arm was sore for a few days, but it went away")."""
    looks_ahead = {
        c.sentence for c in clauses if c.get("future") or c.get("general") or _starts_with(c, "question")
    }
    facts = [_read(clause, compiled, clause.sentence in looks_ahead) for clause in clauses]
    looked_back = [False] * len(clauses)
    for i in range(len(clauses) - 1, 0, -1):
        looked_back[i - 1] = clauses[i - 1].sentence == clauses[i].sentence and (
            facts[i].resolved or looked_back[i]
        )

    frame = _Frame()
    mentioned: str | None = None
    for i, fact in enumerate(facts):
        if i == 0 or clauses[i - 1].sentence != clauses[i].sentence:
            frame = _Frame()
        continues = not fact.independent and fact.size <= _CONTINUATION_WORDS
        asking = fact.asking or (frame.asking and not fact.independent)
        hypothetical = frame.hypothetical and not fact.independent
        past = looked_back[i] or ((fact.past or (frame.past and continues)) and not fact.ongoing)
        negated = frame.negated and continues
        if not past and not negated:
            group = _reported(fact, compiled, asking=asking, hypothetical_from=0 if hypothetical else None)
            if group is None and fact.anaphora and mentioned is not None:
                group = mentioned  # "Can I have chemo with a fever? I have one now."
            if group is not None:
                return group
        if fact.terms:
            mentioned = fact.terms[-1].label.split(":", 1)[1]
        frame = _Frame(
            asking=asking,
            hypothetical=hypothetical or fact.hypothetical_from < fact.size,
            negated=bool(fact.negations) or negated,
            past=past,
        )
    return None


def _read(clause: _Clause, compiled: _Compiled, looks_ahead: bool) -> _Facts:
    tokens = clause.tokens
    terms = _terms(clause)
    general = clause.get("general")
    hypothetical_from = len(tokens)
    if looks_ahead:  # Otherwise "if I press on it, it hurts" describes now.
        # "it will not stop bleeding" and "wondering if my port is infected" imagine nothing.
        shields = [*terms, *clause.get("exception"), *clause.get("not_hypothetical")]
        hypothetical_from = min(
            (m.start for m in clause.get("hypothetical") if not _overlaps(m, shields)), default=len(tokens)
        )
        past_spans = [*clause.get("past"), *clause.get("resolved")]
        if any(m.start > hypothetical_from and not _overlaps(m, past_spans) for m in clause.get("now")):
            hypothetical_from = len(tokens)  # "if I have a temperature of 38 now" is not imagined.

    def speaks(match: _Match) -> bool:
        """A report cue that tells rather than asks ("do i have") or imagines ("if my arm is")."""
        # "do my arms swell" asks; in "what do i do my arm is swollen" the "do" has a subject of its own and
        # "my arm is swollen" tells.
        inverted = match.start > 0 and tokens[match.start - 1] in compiled.inversion_words and not (
            match.start > 1 and tokens[match.start - 2] in _SUBJECTS)
        return not inverted and match.start < hypothetical_from

    references = clause.get("reference")
    shields = [*terms, *clause.get("report")]  # "gone red" is not "gone"; "i have had" is not "had".
    denials = [m.end for m in clause.get("negation")]
    resolved: list[_Match] = []
    unresolved: list[_Match] = []
    for m in clause.get("resolved"):
        if not _overlaps(m, shields):
            # "it has not gone away" says the opposite: the symptom goes on.
            (unresolved if any(0 <= m.start - end <= 1 for end in denials) else resolved).append(m)
    past = [m for m in clause.get("past") if not _overlaps(m, shields, unless_within=True)] + resolved
    ongoing = [m for m in clause.get("ongoing") if not _overlaps(m, past)] + unresolved
    reports = tuple(m for m in clause.get("report") if speaks(m) and not _overlaps(m, general))
    question = _starts_with(clause, "question")
    inside_term = question is not None and any(
        t.start <= question.start and question.end <= t.end for t in terms
    )
    if question is not None and (inside_term or tokens[question.end : question.end + 1] == ("not",)):
        question = None  # "can't breathe" and "does not flush" are statements.
    return _Facts(
        terms=terms,
        # ("I heard there's a bit with every port" passes on hearsay: it says nothing of the writer now.)
        anaphora=any(speaks(m) for m in clause.get("anaphora")) and not general,
        has_site=bool(references or clause.get("site")),
        reports=reports,
        telling=tuple(m for m in reports if not (m.end - m.start == 1 and tokens[m.start] in _POSSESSIVES)),
        fears=clause.get("fear"),
        looks_ahead=looks_ahead,
        ongoing=bool(ongoing),
        past=bool(past),
        resolved=bool(resolved),
        asking=question is not None or bool(general),
        hypothetical_from=hypothetical_from,
        negations=_negations(clause, terms),
        barriers=tuple(m.start for m in (*clause.get("report"), *references)),
        independent=bool(reports or ongoing) or _starts_with(clause, "reference") is not None,
        size=len(tokens),
    )


def _terms(clause: _Clause) -> tuple[_Match, ...]:
    """Symptom words and temperature numbers, with each kind kept in the label; a word inside a longer match
    ("collapsed" in "collapsed lung") is dropped."""
    found = [_Match(m.start, m.end, f"{kind}:{m.label}") for kind in (TERM, TOPIC) for m in clause.get(kind)]
    found += _near_terms(clause)
    for m in clause.get(NUMBER):
        kind = READING if _is_reading(clause.tokens[m.start]) else NUMBER
        found.append(_Match(m.start, m.end, f"{kind}:{m.label}"))
    found.sort(key=lambda m: (m.start, m.start - m.end))
    not_symptoms = clause.get("not_symptom")
    kept: list[_Match] = []
    for match in found:
        inside = any(
            k.start <= match.start and match.end <= k.end and k.end - k.start > match.end - match.start
            for k in kept
        )
        if not inside and not _overlaps(match, not_symptoms):
            kept.append(match)
    return tuple(kept)


def _near_terms(clause: _Clause) -> list[_Match]:
    """A state word ("racing") with its group's subject word ("heart") close by, as a term at the state."""
    not_symptoms = clause.get("not_symptom")
    subjects = [m for m in clause.get(NEAR_SUBJECT) if not _overlaps(m, not_symptoms)]
    out: list[_Match] = []
    for state in clause.get(NEAR_STATE):
        for subject in subjects:
            gap = state.start - subject.end if subject.end <= state.start else subject.start - state.end
            if subject.label == state.label and 0 <= gap <= _NEAR_GAP:
                out.append(_Match(state.start, state.end, f"{TERM}:{state.label}"))
                break
    return out


def _reported(
    fact: _Facts, compiled: _Compiled, *, asking: bool, hypothetical_from: int | None
) -> str | None:
    """The first symptom group this part reports, given what the parts before it handed on."""
    imagined_from = fact.hypothetical_from if hypothetical_from is None else hypothetical_from
    for term in fact.terms:
        kind, group = term.label.split(":", 1)
        if term.start >= imagined_from or _denied(term, fact.negations, fact.barriers, _CUE_REACH):
            continue
        told = any(0 <= term.start - m.end < _CUE_REACH for m in fact.reports)
        # Redness, swelling or pain count at a site, or when someone plainly tells us they have it now.
        if compiled.needs_site[group] and not (fact.has_site or told or fact.ongoing):
            continue
        # A fear of a complication ("worried about clots") is never a report; a fear of a symptom is not one
        # when the sentence looks ahead ("worried about pain after the procedure").
        if (kind == TOPIC or fact.looks_ahead) and any(
            0 <= term.start - m.end < _FEAR_REACH for m in fact.fears
        ):
            continue
        if kind == TOPIC:
            if asking:
                told = any(0 <= term.start - m.end < _CUE_REACH for m in fact.telling)
            reported = told or fact.ongoing
        else:
            reported = kind == READING or told or fact.ongoing or not asking
        if reported:
            return group
    return None
