"""Pure matching: a message against the knowledge base's phrasings, to ranked candidates and a decision."""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from rapidfuzz import fuzz

from bot.config import Matching
from bot.knowledge import KnowledgeBase
from bot.normalize import MAX_MATCH_CHARS, Lexicon, build_lexicon

Outcome = Literal["answer", "clarify", "fallback"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """An entry the message may be asking about, with the phrasing that came closest."""

    entry: str
    question: str
    score: float
    phrasing: str


@dataclass(frozen=True, slots=True)
class Decision:
    """What the matcher decided and why, in terms a developer or member of staff can follow."""

    outcome: Outcome
    candidates: tuple[Candidate, ...]
    reason: str
    tokens: tuple[str, ...] = ()
    repairs: tuple[tuple[str, str], ...] = ()
    unknown: tuple[str, ...] = ()

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None


@dataclass(frozen=True, slots=True)
class _Phrasing:
    entry: int
    text: str
    tokens: frozenset[str]
    pairs: frozenset[tuple[str, str]]
    weight: float
    folded: str


@dataclass(frozen=True, slots=True)
class Index:
    """The knowledge base prepared for matching: normalised phrasings, word weights and an inverted index."""

    lexicon: Lexicon
    entry_ids: tuple[str, ...]
    questions: tuple[str, ...]
    phrasings: tuple[_Phrasing, ...]
    weights: Mapping[str, float]
    unknown_weight: float
    postings: Mapping[str, tuple[int, ...]]
    entry_vocab: tuple[frozenset[str], ...]

    def weight(self, token: str) -> float:
        return self.weights.get(token, self.unknown_weight)


def build_index(kb: KnowledgeBase) -> Index:
    """Normalise every question and phrasing once, and weigh each word by how few entries use it."""
    texts: list[str] = []
    for entry in kb.entries:
        texts.extend((entry.question, entry.answer, *entry.phrasings))
    for talk in kb.smalltalk:
        texts.extend(talk.patterns)
    lexicon = build_lexicon(kb.synonyms, texts)
    raw: list[tuple[int, str, tuple[str, ...]]] = []
    doc_freq: dict[str, int] = defaultdict(int)
    vocab: list[set[str]] = []
    for number, entry in enumerate(kb.entries):
        words: set[str] = set()
        for text in (entry.question, *entry.phrasings):
            tokens = lexicon.tokens(text)
            if tokens:
                raw.append((number, text, tokens))
                words.update(tokens)
        vocab.append(words)
        for token in words:
            doc_freq[token] += 1
    total = max(1, len(kb.entries))
    weights = {token: _idf(total, count) for token, count in doc_freq.items()}
    unknown = _idf(total, 0)
    phrasings: list[_Phrasing] = []
    postings: dict[str, list[int]] = defaultdict(list)
    for number, text, tokens in raw:
        token_set = frozenset(tokens)
        pairs = frozenset(zip(tokens, tokens[1:], strict=False))
        phrasings.append(_Phrasing(number, text, token_set, pairs, sum(weights[t] for t in token_set),
                                   " ".join(tokens)))
        for token in token_set:
            postings[token].append(len(phrasings) - 1)
    return Index(lexicon, tuple(e.id for e in kb.entries), tuple(e.question for e in kb.entries), tuple(phrasings),
                 weights, unknown, {t: tuple(p) for t, p in postings.items()}, tuple(frozenset(v) for v in vocab))


_CLAUSE = re.compile(r"[.?!;:\n]+|,\s*(?=(?:and |but |so )?(?:what|how|can|could|will|would|is|are|do|does|did|"
                     r"should|when|where|who|whos|why|which|am|any|wat|wht|cn|r)\b)", re.IGNORECASE)
# A clause found inside a longer message counts a little less than the same words sent alone.
_CLAUSE_FACTOR = 0.96
MIN_CLAUSE_TOKENS = 2


def _idf(entries: int, containing: int) -> float:
    """How much a word tells entries apart: high for a word only one entry uses, low but never zero for "port"."""
    return math.log(1 + (entries + 1) / (containing + 0.5))


def match(index: Index, message: str, settings: Matching) -> Decision:
    """Rank the entries for `message` and decide: answer, ask which one they meant, or say it is not covered.

    Long messages are also scored clause by clause, since the question is often one sentence inside a story
    ("my oncologist wants me to get a port next week. who puts it in?")."""
    analysis = index.lexicon.analyse(message)
    tokens = analysis.tokens
    unknown = tuple(dict.fromkeys(t for t in tokens if t not in index.weights))
    if not tokens:
        return Decision("fallback", (), "no informative words", tokens, analysis.repairs)
    best = _rank(index, tokens, 1.0)
    clauses = [c for c in _CLAUSE.split(message[:MAX_MATCH_CHARS]) if c.strip()]
    if len(clauses) > 1:
        for clause in clauses:
            clause_tokens = index.lexicon.tokens(clause)
            if len(set(clause_tokens)) >= MIN_CLAUSE_TOKENS and len(clause_tokens) < len(tokens):
                for entry, hit in _rank(index, clause_tokens, _CLAUSE_FACTOR).items():
                    if hit[0] > best.get(entry, (0.0, -1))[0]:
                        best[entry] = hit
    ranked = sorted(best.items(), key=lambda item: (-item[1][0], item[0]))
    candidates = tuple(
        Candidate(index.entry_ids[e], index.questions[e], round(s, 3), index.phrasings[p].text)
        for e, (s, p) in ranked[: max(settings.max_candidates, 3)]
    )
    return _decide(candidates, settings, tokens, analysis.repairs, unknown)


def _rank(index: Index, tokens: tuple[str, ...], factor: float) -> dict[int, tuple[float, int]]:
    """The best score of each entry sharing a word with `tokens`, and the phrasing that gave it."""
    message_set = frozenset(tokens)
    message_pairs = frozenset(zip(tokens, tokens[1:], strict=False))
    message_weight = sum(index.weight(t) for t in message_set)
    folded = " ".join(tokens)
    best: dict[int, tuple[float, int]] = {}
    seen: set[int] = set()
    for token in message_set:
        for number in index.postings.get(token, ()):
            if number in seen:
                continue
            seen.add(number)
            phrasing = index.phrasings[number]
            score = factor * _score(index, phrasing, message_set, message_pairs, message_weight, folded)
            if score > best.get(phrasing.entry, (0.0, -1))[0]:
                best[phrasing.entry] = (score, number)
    return best


# Knobs of the scoring formula, fixed here because they belong to the method, not to a deployment.
VOCAB_CREDIT = 0.5     # a message word that this entry knows from its other phrasings
OTHER_PENALTY = 1.0    # a word the knowledge base knows from other entries only
STORY_TOKENS = 8.0     # beyond this many words, words unknown to the knowledge base count less and less
COVER_EXP = 0.5        # score = covered ** COVER_EXP * explained ** (1 - COVER_EXP)


def _score(index: Index, phrasing: _Phrasing, message: frozenset[str], pairs: frozenset[tuple[str, str]],
           message_weight: float, folded: str) -> float:
    shared = message & phrasing.tokens
    common = sum(index.weight(t) for t in shared)
    if common <= 0 or phrasing.weight <= 0:
        return 0.0
    vocab = index.entry_vocab[phrasing.entry]
    known = unknown = other = 0.0
    for token in message - shared:
        weight = index.weight(token)
        if token in vocab:
            known += weight
        elif token in index.weights:
            other += weight
        else:
            unknown += weight
    story = min(1.0, STORY_TOKENS / len(message))
    on_topic = common + VOCAB_CREDIT * known
    explained = on_topic / (common + known + OTHER_PENALTY * other + story * unknown)
    covered = common / phrasing.weight
    score = covered**COVER_EXP * min(1.0, explained) ** (1 - COVER_EXP)
    if pairs & phrasing.pairs:
        score += 0.03
    score += 0.05 * (fuzz.ratio(folded, phrasing.folded) / 100.0 - 0.5)
    return max(0.0, min(1.0, score))


def _decide(candidates: tuple[Candidate, ...], settings: Matching, tokens: tuple[str, ...],
            repairs: tuple[tuple[str, str], ...], unknown: tuple[str, ...]) -> Decision:
    if not candidates or candidates[0].score < settings.clarify:
        top = f"{candidates[0].score:.2f}" if candidates else "none"
        return Decision("fallback", candidates, f"best score {top} is below {settings.clarify:.2f}",
                        tokens, repairs, unknown)
    first = candidates[0]
    second = candidates[1].score if len(candidates) > 1 else 0.0
    if first.score >= settings.answer and first.score - second >= settings.margin:
        return Decision("answer", candidates, f"{first.score:.2f} clears {settings.answer:.2f} and leads the next "
                        f"by {first.score - second:.2f}", tokens, repairs, unknown)
    close = tuple(c for c in candidates if c.score >= max(settings.clarify, first.score - 0.15))
    why = ("no entry is clearly ahead" if first.score >= settings.answer
           else f"best score {first.score:.2f} is below {settings.answer:.2f}")
    return Decision("clarify", close[: settings.max_candidates], why, tokens, repairs, unknown)


def phrasing_conflicts(index: Index, settings: Matching) -> list[tuple[str, str, str, float, float]]:
    """Phrasings that now match another entry better than their own: (entry, phrasing, other, own, other score)."""
    out: list[tuple[str, str, str, float, float]] = []
    for phrasing in index.phrasings:
        decision = match(index, phrasing.text, settings)
        own = index.entry_ids[phrasing.entry]
        best = decision.best
        if best is not None and best.entry != own:
            own_score = next((c.score for c in decision.candidates if c.entry == own), 0.0)
            if best.score > own_score:
                out.append((own, phrasing.text, best.entry, own_score, best.score))
    return out

