"""Pure matching: a message against the knowledge base's phrasings, to ranked candidates and a decision."""

from __future__ import annotations

import heapq
import math
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from rapidfuzz import fuzz

from bot.config import Matching
from bot.knowledge import KnowledgeBase
from bot.normalize import MAX_MATCH_CHARS, STORY_WORDS, Lexicon, build_lexicon, fold, stem

Outcome = Literal["answer", "clarify", "fallback"]
GAP_PREFIX = "gap:"


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
    entry_vocab: tuple[frozenset[str], ...]
    entry_counts: tuple[Mapping[str, int], ...]
    entry_totals: tuple[int, ...]
    entry_postings: Mapping[str, tuple[int, ...]]
    entry_phrasings: tuple[tuple[int, ...], ...]

    def weight(self, token: str) -> float:
        return self.weights.get(token, self.unknown_weight)


def build_index(kb: KnowledgeBase) -> Index:
    """Normalise every question and phrasing once, and weigh each word by how few entries use it.

    Known gaps (topics the guide does not cover) are indexed like entries, so that a question about one of them
    is recognised as such instead of drifting to the nearest entry that shares a word with it."""
    texts: list[str] = []
    for entry in kb.entries:
        texts.extend((entry.question, entry.answer, *entry.phrasings))
    for talk in kb.smalltalk:
        texts.extend(talk.patterns)
    for gap in kb.gaps:
        texts.extend(gap.phrasings)
    lexicon = build_lexicon(kb.synonyms, texts)
    documents = [(e.id, e.question, (e.question, *e.phrasings)) for e in kb.entries]
    documents += [(GAP_PREFIX + g.topic, g.topic, g.phrasings) for g in kb.gaps]
    raw: list[tuple[int, str, tuple[str, ...]]] = []
    counts: list[dict[str, int]] = []
    doc_freq: dict[str, int] = defaultdict(int)
    vocab: list[frozenset[str]] = []
    for number, (_, _, phrasings_of) in enumerate(documents):
        count: dict[str, int] = defaultdict(int)
        for text in phrasings_of:
            tokens = lexicon.tokens(text)
            if tokens:
                raw.append((number, text, tokens))
                for token in set(tokens):
                    count[token] += 1
        counts.append(dict(count))
        vocab.append(frozenset(count))
        for token in count:
            doc_freq[token] += 1
    total = max(1, len(documents))
    weights = {token: _idf(total, count) for token, count in doc_freq.items()}
    phrasings: list[_Phrasing] = []
    by_entry: list[list[int]] = [[] for _ in documents]
    entry_postings: dict[str, list[int]] = defaultdict(list)
    for number, words in enumerate(vocab):
        for token in words:
            entry_postings[token].append(number)
    for number, text, tokens in raw:
        token_set = frozenset(tokens)
        pairs = frozenset(zip(tokens, tokens[1:], strict=False))
        by_entry[number].append(len(phrasings))
        phrasings.append(_Phrasing(number, text, token_set, pairs, sum(weights[t] for t in token_set),
                                   " ".join(tokens)))
    return Index(lexicon, tuple(d[0] for d in documents), tuple(d[1] for d in documents), tuple(phrasings),
                 weights, _idf(total, 0), tuple(vocab), tuple(counts), tuple(sum(c.values()) for c in counts),
                 {t: tuple(e) for t, e in entry_postings.items()}, tuple(tuple(p) for p in by_entry))


_CLAUSE = re.compile(r"[.?!;:\n]+|,\s*(?=(?:and |but |so )?(?:what|how|can|could|will|would|is|are|do|does|did|"
                     r"should|when|where|who|whos|why|which|am|any|wat|wht|cn|r)\b)", re.IGNORECASE)
# A clause found inside a longer message counts a little less than the same words sent alone.
_CLAUSE_FACTOR = 0.96
MIN_CLAUSE_TOKENS = 2
CLEAR_WHOLE = 0.8


def _idf(entries: int, containing: int) -> float:
    """How much a word tells entries apart: high for a word only one entry uses, low but never zero for "port"."""
    return math.log(1 + (entries + 1) / (containing + 0.5))


_ASIDE = re.compile(r"[.?!;:\n,]+|\s+but\s+|\s+-+\s+", re.IGNORECASE)
_DENIED = re.compile(r"^(?:no|not|never|nothing|without|none|i (?:do|did|have|am|was) not|i (?:have|had) no|"
                     r"there (?:is|are|was|were|has been) no|(?:it|that) (?:is|was) not)\b")
_OVER = re.compile(r"\b(?:went away|gone away|has gone|have gone|is gone|are gone|ago|last (?:week|month|year)|"
                   r"all sorted|sorted now|cleared up|turned out|got better|went down)\b")


def _set_aside(message: str) -> str:
    """The message without asides that deny or put in the past ("no swelling or redness, just curious how long
    it stays in"): they say what the question is not about, so their words must not steer the match."""
    parts = [p for p in _ASIDE.split(message[:MAX_MATCH_CHARS]) if p.strip()]
    kept = [p for p in parts if not (_DENIED.match(fold(p)) or _OVER.search(fold(p)))]
    return " . ".join(kept) if kept and len(kept) < len(parts) else message


def match(index: Index, message: str, settings: Matching) -> Decision:
    """Rank the entries for `message` and decide: answer, ask which one they meant, or say it is not covered.

    Long messages are also scored clause by clause, since the question is often one sentence inside a story
    ("my oncologist wants me to get a port next week. who puts it in?")."""
    message = _set_aside(message)
    analysis = index.lexicon.analyse(message)
    tokens = analysis.tokens
    unknown = tuple(dict.fromkeys(t for t in tokens if t not in index.weights))
    if not tokens:
        return Decision("fallback", (), "no informative words", tokens, analysis.repairs)
    best = _rank(index, tokens, 1.0, analysis.common)
    clauses = [c for c in _CLAUSE.split(message[:MAX_MATCH_CHARS]) if c.strip()]
    top = max((hit[0] for hit in best.values()), default=0.0)
    if len(clauses) > 1 and top < CLEAR_WHOLE:  # a clear match of the whole message needs no second look
        for clause in clauses:
            part = index.lexicon.analyse(clause)
            clause_tokens = part.tokens
            if len(set(clause_tokens)) >= MIN_CLAUSE_TOKENS and len(clause_tokens) < len(tokens):
                for entry, hit in _rank(index, clause_tokens, _CLAUSE_FACTOR, part.common).items():
                    if hit[0] > best.get(entry, (0.0, -1))[0]:
                        best[entry] = hit
    ranked = sorted(best.items(), key=lambda item: (-item[1][0], item[0]))
    candidates = tuple(
        Candidate(index.entry_ids[e], index.questions[e], round(s, 3), index.phrasings[p].text)
        for e, (s, p) in ranked[: settings.max_candidates + 4]
    )
    return _decide(candidates, settings, tokens, analysis.repairs, unknown)


def _rank(index: Index, tokens: tuple[str, ...], factor: float, common: frozenset[str]) -> dict[int, tuple[float, int]]:
    """The best score of each likely entry, and the phrasing that gave it.

    Only the entries sharing the most informative words with the message are scored phrasing by phrasing
    (a cheap sum over the entry index first), so matching stays fast as the knowledge base grows."""
    message_set = frozenset(tokens)
    message_pairs = frozenset(zip(tokens, tokens[1:], strict=False))
    folded = " ".join(tokens)
    overlap: dict[int, float] = defaultdict(float)
    for token in message_set:
        weight = index.weights.get(token)
        if weight is not None:
            for entry in index.entry_postings[token]:
                overlap[entry] += weight
    shortlist = heapq.nlargest(SHORTLIST, overlap.items(), key=lambda item: (item[1], -item[0]))
    best: dict[int, tuple[float, int]] = {}
    for entry, inside in shortlist:
        outside = _outside(index, index.entry_vocab[entry], message_set, common)
        for number in index.entry_phrasings[entry]:
            phrasing = index.phrasings[number]
            if phrasing.tokens.isdisjoint(message_set):
                continue
            score = factor * _score(index, phrasing, message_set, message_pairs, inside, outside, folded,
                                    best.get(entry, (0.0, -1))[0] / factor)
            if score > best.get(entry, (0.0, -1))[0]:
                best[entry] = (score, number)
    if NB_SHARE and best:
        posterior = _posterior(index, message_set, best)
        peak = max(posterior.values())
        for entry, (score, number) in best.items():
            if score < factor * EXACT:  # a message that is word for word a phrasing is that entry's question
                best[entry] = (score * (1 - NB_SHARE + NB_SHARE * posterior[entry] / peak), number)
    return best


def _posterior(index: Index, message: frozenset[str], entries: Mapping[int, object]) -> dict[int, float]:
    """How likely each candidate entry is to have produced the message's known words, judging by how often
    each word occurs across all of that entry's phrasings (multinomial naive Bayes, smoothed)."""
    known = [t for t in message if t in index.weights]
    size = len(index.weights)
    logs = {}
    for entry in entries:
        counts, total = index.entry_counts[entry], index.entry_totals[entry]
        logs[entry] = sum(math.log((counts.get(t, 0) + NB_ALPHA) / (total + NB_ALPHA * size)) for t in known)
    top = max(logs.values())
    odds = {entry: math.exp(value - top) for entry, value in logs.items()}
    total_odds = sum(odds.values())
    return {entry: value / total_odds for entry, value in odds.items()}


# Knobs of the scoring formula, fixed here because they belong to the method, not to a deployment; they were
# chosen on the project's evaluation sets (tests/eval), and the held-out set checks that they generalise.
VOCAB_CREDIT = 0.5     # a message word that this entry knows from its other phrasings counts half in favour
STORY_PENALTY = 0.25   # an unmatched story word ("mum", "nervous", "yesterday") counts this much against
_STORY = frozenset(stem(word) for word in STORY_WORDS)
UNKNOWN_PENALTY = 1.5  # a word the knowledge base does not know at all
COMMON_UNKNOWN = 1.0   # share of that penalty for a very common English word ("leave", "normally")
OTHER_PENALTY = 1.0    # a word the knowledge base knows from other entries only
STORY_TOKENS = 8.0     # beyond this many words, words unknown to the knowledge base count less and less
NB_SHARE = 0.4         # how far entry-level word evidence can pull down a candidate it does not favour
NB_ALPHA = 0.3
SHORTLIST = 8          # entries scored phrasing by phrasing, chosen by their informative words in common
EXACT = 0.98
COVER_EXP = 0.5        # score = covered ** COVER_EXP * explained ** EXPLAIN_EXP
EXPLAIN_EXP = 0.7


def _outside(index: Index, vocab: frozenset[str], message: frozenset[str], everyday: frozenset[str]) -> float:
    """How much of the message lies outside an entry's vocabulary, weighted by what kind of word it is."""
    story = min(1.0, STORY_TOKENS / len(message))
    total = 0.0
    for token in message:
        if token in vocab:
            continue
        weight = index.weights.get(token)
        if token in _STORY:
            total += STORY_PENALTY * (weight or index.unknown_weight)
        elif weight is not None:
            total += OTHER_PENALTY * weight
        else:
            total += UNKNOWN_PENALTY * story * (COMMON_UNKNOWN if token in everyday else 1.0) * index.unknown_weight
    return total


def _score(index: Index, phrasing: _Phrasing, message: frozenset[str], pairs: frozenset[tuple[str, str]],
           inside: float, outside: float, folded: str, beat: float = 0.0) -> float:
    """How well one phrasing matches: how much of the phrasing the message covers, times how much of the
    message the phrasing (and, at half credit, the rest of its entry's vocabulary) explains.

    `inside` is the weight of the message words the entry knows, `outside` the penalty for the others."""
    weights = index.weights
    common = sum(weights[t] for t in message & phrasing.tokens)
    if common <= 0 or phrasing.weight <= 0:
        return 0.0
    covered = common / phrasing.weight
    if covered**COVER_EXP + 0.055 <= beat:  # cannot beat this entry's best phrasing so far
        return 0.0
    known = inside - common
    explained = (common + VOCAB_CREDIT * known) / (inside + outside)
    score = covered**COVER_EXP * min(1.0, explained) ** EXPLAIN_EXP
    if not pairs.isdisjoint(phrasing.pairs):
        score += 0.03
    score += 0.05 * (fuzz.ratio(folded, phrasing.folded) / 100.0 - 0.5)
    return max(0.0, min(1.0, score))


def _decide(ranked: tuple[Candidate, ...], settings: Matching, tokens: tuple[str, ...],
            repairs: tuple[tuple[str, str], ...], unknown: tuple[str, ...]) -> Decision:
    """Answer, clarify or fall back. A known gap may win the ranking (then it is "not covered") but is never
    offered to the patient as a candidate."""
    candidates = tuple(c for c in ranked if not c.entry.startswith(GAP_PREFIX))[: settings.max_candidates]
    if not ranked or ranked[0].score < settings.clarify:
        top = f"{ranked[0].score:.2f}" if ranked else "none"
        return Decision("fallback", candidates, f"best score {top} is below {settings.clarify:.2f}",
                        tokens, repairs, unknown)
    first = ranked[0]
    if first.entry.startswith(GAP_PREFIX):
        return Decision("fallback", candidates, f"closest to '{first.question}' ({first.score:.2f}), a topic the "
                        "guide does not cover", tokens, repairs, unknown)
    second = ranked[1].score if len(ranked) > 1 else 0.0
    if first.score >= settings.answer and first.score - second >= settings.margin:
        return Decision("answer", candidates, f"{first.score:.2f} clears {settings.answer:.2f} and leads the next "
                        f"by {first.score - second:.2f}", tokens, repairs, unknown)
    close = tuple(c for c in candidates if c.score >= max(settings.clarify, first.score - 0.15))
    why = ("no entry is clearly ahead" if first.score >= settings.answer
           else f"best score {first.score:.2f} is below {settings.answer:.2f}")
    return Decision("clarify", close, why, tokens, repairs, unknown)


def phrasing_conflicts(index: Index, settings: Matching) -> list[tuple[str, str, str, float, float]]:
    """Phrasings that now match another entry (or a known gap) better than their own entry:
    (entry, phrasing, other, own score, other score)."""
    loose = Matching(0.0, 0.0, 0.0, settings.max_candidates + 4)
    out: list[tuple[str, str, str, float, float]] = []
    for phrasing in index.phrasings:
        own = index.entry_ids[phrasing.entry]
        if own.startswith(GAP_PREFIX):
            continue
        analysis = index.lexicon.analyse(phrasing.text)
        ranked = _rank(index, analysis.tokens, 1.0, analysis.common)
        if not ranked:
            continue
        best_entry, (best_score, _) = max(ranked.items(), key=lambda item: (item[1][0], -item[0]))
        own_score = ranked.get(phrasing.entry, (0.0, 0))[0]
        if best_entry != phrasing.entry and best_score > own_score:
            out.append((own, phrasing.text, index.entry_ids[best_entry], round(own_score, 3), round(best_score, 3)))
    del loose
    return out
