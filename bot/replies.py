"""Pure reply composition shared by every front end: one message in, one Reply out."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from rapidfuzz import fuzz, process

from bot import safety
from bot.config import Settings
from bot.knowledge import Entry, KnowledgeBase
from bot.matching import (
    CLEAR_WHOLE,
    Candidate,
    Decision,
    Index,
    asks_or_names,
    build_index,
    clause_parts,
    match,
    starts_asking,
)
from bot.normalize import FILLER, STORY_WORDS, fold, stem

Kind = Literal["answer", "clarify", "fallback", "urgent", "chat"]
_SMALLTALK_RATIO = 88.0
_TALK_STORY_CHARS = 400  # beyond this, a message with a greeting in it is read as a question
_TALK_WORDS_MOST = 12  # small talk worded another way is short
# Words that only build a question ("can you tell me", "what is it"): filler and question words, not the small
# talk that filler also holds ("help?", "bot?", "ok").
_PLAIN = (FILLER - {"help", "bot", "portbot", "hi", "hello", "hey", "thanks", "thank", "cheers", "sorry", "bother",
                    "bothering", "ok", "okay", "lol", "haha", "advance"}
          | {"what", "whats", "how", "who", "why", "when", "where", "which"})
# What someone else said, asked back about: the small talk is what was said.
_HEARSAY = re.compile(r"^(?:(?:someone|somebody|people|they|my \w+) (?:said|says|told me|tell me)|i (?:heard|read)|"
                      r"is it true)(?: that)? | (?:is that|is it) (?:true|right|so)$")
# Words that speak to or about the bot: small talk in other words than its patterns holds one.
_ADDRESSED = frozenset("you your yourself bot chatbot robot human person computer machine ai nurse doctor real "
                       "automated someone anyone help portbot".split())
# and those that can only mean the bot, so that its topic words do not make it a question: "who made you?"
_TO_THE_BOT = frozenset("you your yourself bot chatbot robot computer machine ai automated portbot".split())
_TALKING = frozenset({"talk", "speak", "chat", "doctor"})  # asking who is there: "talking to a robot or a doctor?"


@dataclass(frozen=True, slots=True)
class Reply:
    """Everything a front end needs to show one reply; `text` is exactly what the patient reads."""

    kind: Kind
    text: str
    entry: str | None = None
    score: float | None = None
    candidates: tuple[Candidate, ...] = ()
    related: tuple[tuple[str, str], ...] = ()
    reason: str = ""
    decision: Decision | None = field(default=None, compare=False)

    def as_json(self) -> dict[str, object]:
        """The stable `portbot ask --json` contract."""
        return {
            "kind": self.kind,
            "text": self.text,
            "entry": self.entry,
            "score": self.score,
            "candidates": [{"entry": c.entry, "question": c.question, "score": c.score} for c in self.candidates],
        }


@dataclass(frozen=True, slots=True)
class Brain:
    """A loaded knowledge base, its matching index and the settings: all a reply depends on."""

    kb: KnowledgeBase
    index: Index
    settings: Settings
    texts: Mapping[str, str]
    smalltalk: tuple[tuple[str, str, str], ...]  # (folded pattern, intent, reply)
    talk_patterns: tuple[str, ...] = ()  # the folded patterns, in the same order
    talk_index: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # folded pattern -> (intent, reply)
    # first word of a folded pattern -> the numbers of the patterns starting with it, in order
    talk_starts: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    # per intent, in the order of the file: every word its patterns use, its patterns, and its reply
    talk_words: tuple[tuple[str, frozenset[str], tuple[str, ...], str], ...] = ()


def build_brain(kb: KnowledgeBase, settings: Settings, index: Index | None = None) -> Brain:
    """Prepare everything that does not change from one message to the next; `index`, when given, must have been
    built from `kb` (a prepared one saves building it again)."""
    values = settings.placeholders()
    texts = {name: text.format(**values) for name, text in kb.texts.items()}
    talk = tuple(item for item in ((_talk_fold(p), t.intent, t.reply.format(**values))
                                   for t in kb.smalltalk for p in t.patterns) if item[0])
    first: dict[str, tuple[str, str]] = {}
    for pattern, intent, reply in talk:
        first.setdefault(pattern, (intent, reply))
    starts: dict[str, list[int]] = {}
    for number, (pattern, _, _) in enumerate(talk):
        starts.setdefault(pattern.split(" ", 1)[0], []).append(number)
    words: dict[str, set[str]] = {}
    patterns: dict[str, list[str]] = {}
    replies: dict[str, str] = {}
    for pattern, intent, reply in talk:
        words.setdefault(intent, set()).update(pattern.split())
        patterns.setdefault(intent, []).append(pattern)
        replies.setdefault(intent, reply)
    return Brain(kb, build_index(kb) if index is None else index, settings, texts, talk,
                 tuple(item[0] for item in talk), first, {word: tuple(found) for word, found in starts.items()},
                 tuple((intent, frozenset(found), tuple(patterns[intent]), replies[intent])
                       for intent, found in words.items()))


def respond(brain: Brain, message: str) -> Reply:
    """The reply to one patient message: safety first, then small talk, then the knowledge base."""
    if not fold(message):
        return Reply("fallback", brain.texts["empty_message"], reason="empty message")
    finding = safety.check(message, brain.kb.safety)
    if finding is not None:
        name = "crisis" if finding.kind == "crisis" else "urgent"
        return Reply("urgent", brain.texts[name], reason=finding.reason)
    talk = _smalltalk(brain, message)
    if talk is not None:
        intent, text = talk
        return Reply("chat", text, reason=f"small talk: {intent}")
    decision = match(brain.index, message, brain.settings.matching)
    if decision.outcome == "answer":
        best = decision.candidates[0]
        entry = brain.kb.entry(best.entry)
        assert entry is not None  # the index is built from these very entries
        return _answer_reply(brain, entry, best.score, decision)
    if decision.outcome == "clarify":
        return clarify_reply(brain, decision)
    return Reply("fallback", brain.texts["not_covered"], score=_top(decision), candidates=decision.candidates,
                 reason=decision.reason, decision=decision)


def answer_entry(brain: Brain, entry_id: str) -> Reply | None:
    """The answer to one entry chosen directly (a button, a topic list); None if the entry no longer exists."""
    entry = brain.kb.entry(entry_id)
    return None if entry is None else _answer_reply(brain, entry, None, None)


def not_covered(brain: Brain) -> Reply:
    """The honest "this guide does not cover that" reply."""
    return Reply("fallback", brain.texts["not_covered"], reason="chosen: none of these")


def clarify_reply(brain: Brain, decision: Decision) -> Reply:
    lines = [brain.texts["clarify_prompt"]]
    lines += [f"{number}. {c.question}" for number, c in enumerate(decision.candidates, 1)]
    lines.append(brain.texts["clarify_hint"])
    return Reply("clarify", "\n".join(lines), score=_top(decision), candidates=decision.candidates,
                 reason=decision.reason, decision=decision)


def _answer_reply(brain: Brain, entry: Entry, score: float | None, decision: Decision | None) -> Reply:
    parts = [entry.answer]
    if entry.warning_signs:
        parts.append(brain.texts["warning_signs"])
    parts.append(brain.texts["care_team_reminder"])
    related = tuple((r, brain.kb.by_id[r].question) for r in entry.related if r in brain.kb.by_id)[:3]
    candidates = decision.candidates if decision else ()
    return Reply("answer", "\n\n".join(parts), entry.id, score, candidates, related,
                 decision.reason if decision else "chosen directly", decision)


def _smalltalk(brain: Brain, message: str) -> tuple[str, str] | None:
    """Small talk: a short message that is small talk through and through (_talk), or a longer one in which some
    part is small talk and no other part asks anything or is something the guide answers (_answers): "Hi there.
    I'm a bit of a nervous wreck, so I thought I'd ask here first.", "Who made you? I want to know whether I can
    trust you.", "Goodbye, and thanks again, I feel a bit more ready for Thursday." ("Hi. Can I swim?" asks;
    "Thanks. I'm still worried about the risks." is answered: both go on to the knowledge base.)"""
    # A message led by a question word is small talk only when small talk leads it too ("what can you do?"),
    # not when it merely holds a small-talk word ("what are the good things about having one?").
    talk = _talk(brain, message, leading=_WH_LED.match(fold(message)) is not None)
    if talk is not None or len(message) > _TALK_STORY_CHARS:
        return talk
    parts = clause_parts(message)
    if len(parts) < 2 and "," not in message:  # one part: read whole just now, and asking can only say less
        return None
    found: tuple[str, str] | None = None
    talk_asked = False  # whether the part before was a small-talk question ("who made you?")
    for clause, asks in parts:
        pieces = [piece for piece in clause.split(",") if piece.strip()]
        for number, piece in enumerate(pieces):
            # A part that asks is small talk only when it starts as small talk ("am I talking to a real person or
            # a computer?"), not when it merely holds a small-talk word ("how soon can they start using it?").
            marked = asks and number == len(pieces) - 1
            worded = starts_asking(piece) or bool(_ASKING_WORD.search(piece))
            talk = _talk(brain, piece, leading=marked or worded)
            if talk is not None:
                found = found or talk
            elif _HERE.search(piece) or _ROLE.match(fold(piece)):
                pass  # the writer says who they are: "sickle cell mum here", "I'm an oncology nurse and..."
            elif marked and not worded and talk_asked:
                pass  # a guess that goes on asking the bot: "Who made you? The hospital?"
            elif marked or worded or _answers(brain, piece):
                return None  # a question, or a part the guide answers ("risks. thanks in advance")
            talk_asked = talk is not None and (marked or worded)
    return found


def _answers(brain: Brain, text: str) -> bool:
    """Whether the guide answers the text on its own: with a clear match ("risks", "about the cost"), or with any
    match when the text names a topic ("I'm still worried about clots though"). A story sentence gets no clear
    match even when a word of it is known ("so I thought I'd ask here first"), and one that names a topic the guide
    does not cover is no question ("I've been lying awake worrying all week", "sickle cell mum here")."""
    decision = match(brain.index, text, brain.settings.matching)
    if decision.outcome != "answer":
        return False
    return decision.candidates[0].score >= CLEAR_WHOLE or asks_or_names(brain.index, text)


def _talk(brain: Brain, message: str, leading: bool = False) -> tuple[str, str] | None:
    """Small talk only when the message is small talk through and through: "hi, can I swim?" is a question.

    It is small talk when the message is (nearly) one of the patterns, or when taking out the small-talk
    phrases leaves no word the knowledge base could answer about ("thanks, that's really helpful"); with
    `leading`, only when a small-talk phrase also starts the message (after "so", "and", "ok"...)."""
    folded = _talk_fold(message)
    if len(folded) > 80:
        return None
    exact = brain.talk_index.get(folded) or (brain.talk_index.get(_cut_short(folded))
                                             if len(folded) <= _DRAWN_OUT_CHARS else None)
    if exact is not None:
        return exact
    if len(folded) >= 4:  # the closest pattern, first of equals, by rapidfuzz in one call
        hit = process.extractOne(folded, brain.talk_patterns, scorer=fuzz.ratio, score_cutoff=_SMALLTALK_RATIO)
        if hit is not None:
            _, intent, reply = brain.smalltalk[hit[2]]
            return intent, reply
    padded = f" {folded} "
    # Only the patterns whose first word is in the message can be in it.
    numbers = sorted(n for word in set(folded.split()) for n in brain.talk_starts.get(word, ()))
    talk = [brain.smalltalk[n] for n in numbers]
    found = [(padded.index(f" {p} "), -len(p), p, i, r) for p, i, r in talk if f" {p} " in padded]
    if not found or (leading and min(found)[0] != len(_OPENING.match(padded)[0]) - 1):  # type: ignore[index]
        return _talk_words(brain, folded)
    rest = padded
    for _, _, pattern, _, _ in sorted(found, key=lambda hit: hit[1]):
        rest = rest.replace(f" {pattern} ", " ")
    _, _, _, intent, reply = min(found)
    # What is left may tell a little story ("hello, I'm asking for my dad") but must ask nothing.
    if all(token in _CHATTY or token in _STORY for token in brain.index.lexicon.tokens(rest)):
        return intent, reply
    # A greeting or thanks followed by a statement that asks nothing and names no topic introduces the writer
    # ("hiya, I'm writing for my husband who has a port"); a statement that could be a question does not.
    if (min(found)[0] == 0 and _INTRODUCES.match(rest.strip()) and not asks_or_names(brain.index, rest)
            and not _answers(brain, message)):  # "Hello, my GP mentioned a port. What is it used for?" asks
        return intent, reply
    return _talk_words(brain, folded)


def _talk_words(brain: Brain, folded: str) -> tuple[str, str] | None:
    """A short message that speaks to or about the bot ("you", "real", "chatbot"...) in words that one intent's
    patterns use, or words of the bot itself: small talk worded another way ("real person?", "am I talking to a
    robot or a nurse", "who made this chatbot?"). Of the intents whose words cover it, the one with the closest
    pattern, words in any order. ("is that ok?" or "what is it" speak to nobody: they ask about what was said.)"""
    folded = _HEARSAY.sub("", folded).strip()  # "someone said this is just a computer, is that true?"
    words = folded.split()
    if not words or len(words) > _TALK_WORDS_MOST or _ADDRESSED.isdisjoint(words):
        return None
    if all(word in _PLAIN for word in words):  # "can you tell me?" after a story asks about the story
        return None
    if _TO_THE_BOT.isdisjoint(words):  # then a word the guide answers about asks: "is the pain real?"
        for word in words:
            token = stem(word)
            if brain.index.weights.get(token) and token not in _CHATTY and token not in _STORY | _TALKING:
                return None
    loose = {word for word in words if stem(word) in _CHATTY}
    best: tuple[float, str, str] | None = None
    for intent, known, patterns, reply in brain.talk_words:
        if known.issuperset(word for word in words if word not in loose):
            hit = process.extractOne(folded, patterns, scorer=fuzz.token_sort_ratio)
            if hit is not None and (best is None or hit[1] > best[0]):
                best = (hit[1], intent, reply)
    return None if best is None else (best[1], best[2])


def _talk_fold(text: str) -> str:
    """Folded, with text-speak spelled out: small-talk messages and patterns alike ("are u a real person")."""
    return " ".join(_TEXT_SPEAK.get(word, word) for word in fold(text).split())


def _cut_short(folded: str) -> str:
    """Drawn-out letters cut short, for a whole message to be looked up as a pattern: "heyy", "hiiii", "byee"."""
    return " ".join(_DRAWN_OUT.sub(r"\1", _TRAILING.sub(r"\1", word)) for word in folded.split())


# Text-speak spelled out in small talk (matching has its own synonyms).
_TEXT_SPEAK = {"u": "you", "r": "are", "ur": "your", "ya": "you", "yu": "you", "pls": "please", "plz": "please",
               # and words that say the same to small talk: "am I talking to an actual nurse?"
               "an": "a", "actual": "real", "genuine": "real", "proper": "real", "speaking": "talking",
               "chatting": "talking", "automatic": "automated", "these": "this"}
_DRAWN_OUT_CHARS = 40  # drawn-out small talk is short: "heyy", "thanks sooo much", "byeee for now"
_TRAILING = re.compile(r"([a-z])\1+$")
_DRAWN_OUT = re.compile(r"([a-z])\1{2,}")
_STORY = frozenset(map(stem, STORY_WORDS))
# A question word anywhere asks, in a message of story and small talk: "port stay in body how much time".
# ("what you told me", "how they do it" are not questions: the question word starts a clause of its own.)
_ASKING_WORD = re.compile(r"\b(?:what|whats|how|why|when|where|which|wat|wot)\b"
                          r"(?!\s+(?:i|you|youre|he|she|they|theyre|we|it|im)\b)", re.IGNORECASE)
_HERE = re.compile(r"\b(?:mum|mom|mam|dad|mother|father|parent|wife|husband|partner|carer|caregiver|patient|"
                   r"daughter|son|nurse|grandma|grandad)\s+here\s*$", re.IGNORECASE)
_ROLE = re.compile(r"(?:hi |hello |hey )?(?:i am|im) (?:a|an) (?!(?:bit|little|tad|lot)\b)")
_WH_LED = re.compile(r"(?:(?:so|and|ok|okay|oh|well|hi|hey|hello) )*"
                     r"(?:what|whats|how|hows|why|when|where|which|wat|wot)\b")
_OPENING = re.compile(r" (?:(?:and|so|ok|okay|oh|well|also) )*")
_INTRODUCES = re.compile(r"(?:i|im|ive|i am|i have|we|we are|my|just|asking|writing|this is|it is|its|it|that)\b")
# Words that add nothing to small talk: "thanks, that's really helpful", "what can you help me with".
_CHATTY = frozenset(
    "what how who help use good great nice love lot much mani brilliant lovely amaz awesom perfect kind sweet "
    "appreci cheer bless day night morn even afternoon there everyon bot you portbot comput machin robot human "
    "person real ai x mind rest put reassur relief reliev settl calm better clear clearer explain dear legend star "
    "god chatbot chat programm program softwar human be read write tool".split()
)


def _top(decision: Decision) -> float | None:
    return decision.candidates[0].score if decision.candidates else None
