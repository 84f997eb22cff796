"""Pure matching: a message against the knowledge base's phrasings, to ranked candidates and a decision."""

from __future__ import annotations

import heapq
import itertools
import math
import operator
import re
from array import array
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
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
class Rows:
    """An entry's phrasings to score (by number) and, for each token, the places in `numbers` of those holding
    it: a message's words then add their weight to just the phrasings that have them."""

    numbers: tuple[int, ...]
    places: Mapping[int, tuple[int, ...]]


@dataclass(frozen=True, slots=True)
class Index:
    """The knowledge base prepared for matching: normalised phrasings, word weights and an inverted index.

    Numbers stand for entries, phrasings and tokens: positions in `entry_ids`, `phrasing_texts` and `vocabulary`.
    The phrasings are kept as columns of numbers in arrays rather than as an object each: a guide of 10 000
    entries has 300 000 phrasings, and an object and a tuple of words each would take four times the memory."""

    lexicon: Lexicon
    entry_ids: tuple[str, ...]
    questions: tuple[str, ...]
    vocabulary: tuple[str, ...]  # every token of the phrasings, by number
    token_numbers: Mapping[str, int]
    phrasing_texts: tuple[str, ...]
    phrasing_entries: array[int]
    phrasing_tokens: array[int]  # the token numbers of every phrasing in order, one phrasing after another
    phrasing_starts: array[int]  # where each phrasing's tokens start in phrasing_tokens, and where the last ends
    # The distinct token numbers of the few phrasings that repeat a token ("port ... port"); for the others they
    # are their tokens.
    repeats: Mapping[int, tuple[int, ...]]
    phrasing_weights: array[float]  # the sum of each phrasing's distinct tokens' weights
    weights: Mapping[str, float]
    unknown_weight: float
    entry_counts: tuple[Mapping[str, int], ...]  # per entry: in how many of its phrasings each token occurs
    entry_totals: tuple[int, ...]
    entry_postings: Mapping[str, tuple[int, ...]]
    # Each entry's phrasings to score, in order, less those whose tokens repeat an earlier one's word for word
    # ("wat is a port" after "what is a port"): they would score the same, and the first one wins a tie.
    entry_phrasings: tuple[array[int], ...]
    top_weight: float = 0.0  # the weight of a word only one entry uses
    subject: str = ""  # the word most entries use: what the guide is about ("port")
    # Filled while answering, for speed: an entry's phrasings to score with their tokens' places (Rows), and a
    # phrasing's tokens as text. Bounded, so a guide of 10 000 entries keeps only the entries and phrasings most
    # asked about.
    _rows: dict[int, Rows] = field(default_factory=dict, compare=False, repr=False)
    _texts: dict[int, str] = field(default_factory=dict, compare=False, repr=False)

    def weight(self, token: str) -> float:
        return self.weights.get(token, self.unknown_weight)

    def tokens_of(self, number: int) -> array[int]:
        """A phrasing's token numbers, in order."""
        return self.phrasing_tokens[self.phrasing_starts[number]:self.phrasing_starts[number + 1]]

    def distinct_of(self, number: int) -> Sequence[int]:
        """A phrasing's token numbers without repeats."""
        return self.repeats.get(number) or self.tokens_of(number)

    def rows(self, entry: int) -> Rows:
        """The entry's phrasings to score, and for each of their tokens the places of the phrasings holding it."""
        found = self._rows.get(entry)
        if found is None:
            numbers = tuple(self.entry_phrasings[entry])
            places: dict[int, list[int]] = {}
            for place, number in enumerate(numbers):
                for token in self.distinct_of(number):
                    places.setdefault(token, []).append(place)
            found = Rows(numbers, {token: tuple(at) for token, at in places.items()})
            if len(self._rows) < _ROWS_KEPT:
                self._rows[entry] = found
        return found

    def text_of(self, number: int) -> str:
        """A phrasing's tokens joined by spaces."""
        found = self._texts.get(number)
        if found is None:
            found = " ".join(map(self.vocabulary.__getitem__, self.tokens_of(number)))
            if len(self._texts) < _TEXTS_KEPT:
                self._texts[number] = found
        return found


def indexed_documents(kb: KnowledgeBase) -> list[tuple[str, str, Iterator[str]]]:
    """What the index is built from, in its order: each entry's id, question, and question and phrasings, then
    each known gap's. An index's phrasing_texts are these texts, less those with no word to match."""
    documents: list[tuple[str, str, Iterator[str]]] = [
        (e.id, e.question, itertools.chain((e.question,), e.phrasings)) for e in kb.entries]
    documents += [(GAP_PREFIX + g.topic, g.topic, iter(g.phrasings)) for g in kb.gaps]
    return documents


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
    del texts
    documents = indexed_documents(kb)
    numbers: dict[str, int] = {}
    texts_of: list[str] = []
    entries_of = array("I")  # arrays from the start: lists of millions of numbers would double the peak memory
    token_rows = array("H")  # two bytes a token, while there are at most 65 536 distinct tokens
    starts = array("I", [0])
    repeats: dict[int, tuple[int, ...]] = {}
    to_score: list[array[int]] = []
    counts: list[dict[str, int]] = []
    doc_freq: Counter[str] = Counter()
    for number, (_, _, phrasings_of) in enumerate(documents):
        scored, seen, count = array("i"), set(), Counter[str]()
        for text in phrasings_of:
            tokens = lexicon.tokens(text, near_joins=False)
            if not tokens:
                continue
            if tokens not in seen:
                seen.add(tokens)
                scored.append(len(texts_of))
            distinct = tuple(dict.fromkeys(tokens))
            count.update(distinct)
            ids = [numbers.setdefault(token, len(numbers)) for token in tokens]
            if token_rows.typecode == "H" and len(numbers) > 0xFFFF:
                token_rows = array("I", token_rows)
            if len(distinct) < len(tokens):
                repeats[len(texts_of)] = tuple(dict.fromkeys(ids))
            texts_of.append(text)
            entries_of.append(number)
            token_rows.extend(ids)
            starts.append(len(token_rows))
        to_score.append(scored)
        counts.append(dict(count))
        doc_freq.update(count.keys())
    total = max(1, len(documents))
    weights = {token: _idf(total, count) for token, count in doc_freq.items()}
    entry_postings: dict[str, list[int]] = defaultdict(list)
    for number, words in enumerate(counts):
        for token in words:
            entry_postings[token].append(number)
    vocabulary = tuple(numbers)
    by_number = [weights[token] for token in vocabulary]
    phrasing_weights = array("d", (
        sum(map(by_number.__getitem__, repeats.get(n) or token_rows[starts[n]:starts[n + 1]]))
        for n in range(len(texts_of))))
    lexicon.forget()  # the pieces of 300 000 phrasings are not what messages will hold
    return Index(lexicon, tuple(d[0] for d in documents), tuple(d[1] for d in documents), vocabulary, numbers,
                 tuple(texts_of), entries_of, token_rows, starts, repeats,
                 phrasing_weights, weights, _idf(total, 0), tuple(counts), tuple(sum(c.values()) for c in counts),
                 {t: tuple(e) for t, e in entry_postings.items()}, tuple(to_score), _idf(total, 1),
                 max(doc_freq, key=lambda token: (doc_freq[token], token), default=""))


_CLAUSE = re.compile(r"([.?!;:\n]+|\s[-\u2013\u2014]+\s|"  # sentence ends, dashes, and a comma before a question
                     r",\s*(?=(?:and |but |so )?(?:what|how|can|could|will|would|is|are|do|does|did|"
                     r"should|when|where|who|whos|why|am|any|wat|wht|cn|r)\b))", re.IGNORECASE)
# How a question starts, after an opener ("so", "and", "also"...): a clause starting so, or ending with "?", asks.
_ASKS = re.compile(r"^(?:(?:so|and|but|also|ok|okay|oh|well|then|please|hi|hey|hello|sorry)\s+)*(?:what|whats|how|hows|"
                   r"can|could|will|would|is|isnt|are|arent|do|does|doesnt|did|should|shall|may|might|must|has|have|"
                   r"when|where|wheres|who|whos|why|which|am|any|wat|wot|wht|hw|cn|r|u|wil|wud|cud|shud)\b")
# A clause found inside a longer message counts a little less than the same words sent alone.
_CLAUSE_FACTOR = 0.96
STATEMENT_FACTOR = 0.9  # and a story sentence beside a question, this much of that
MIN_CLAUSE_TOKENS = 2
CLEAR_WHOLE = 0.9
_ROWS_KEPT = 1_000  # entries (about 3 MB at 30 phrasings each)
_TEXTS_KEPT = 20_000  # phrasings


# A clause pointing back at what came before ("what does that mean?", "is a port the same?") is not a question
# on its own: it is read together with the clause before it.
_POINTS_BACK = re.compile(r"\b(?:that|this|these|those|same|such)\b", re.IGNORECASE)
# Kisses at the end ("thanks x"): "x" is also half of "x ray", so it is no filler word, only dropped there.
_KISSES = re.compile(r"(?:\s+x{1,4})+[\s.!]*$", re.IGNORECASE)
_QUESTION_TOKENS = frozenset({"how", "long", "why", "whi", "when", "where", "what", "much", "mani", "which", "who"})
_REFERS = re.compile(r"\b(?:it|they|them|then|one)\b", re.IGNORECASE)


def _clauses(index: Index, message: str) -> tuple[list[str], list[str]]:
    """The parts of the message to score on their own, as (questions, statements).

    A clause asks when it starts like a question or ends with "?"; when none does, the last one is taken as the
    question ("my husband gets his port next week. risks"). A clause that names no topic of its own and points
    back ("what does that mean?") is scored joined to the clauses from the last one that names a topic, which
    then count as part of the question, not as a story around it; one that refers back ("what actually is it?",
    "what happens then?") is scored with the knowledge-base words of that clause. When no clause before names a
    topic, either kind is also scored as asking about what the guide is about ("they say he needs a port. what
    actually is that?" asks what a port is)."""
    pieces = _CLAUSE.split(message[:MAX_MATCH_CHARS])
    clauses: list[tuple[str, bool]] = []
    topics: list[bool] = []  # whether each clause names a topic
    joined: list[tuple[str, bool]] = []
    topical = TOPIC_SHARE * index.top_weight
    for number in range(0, len(pieces), 2):
        clause = pieces[number]
        tokens = index.lexicon.tokens(clause)
        if not tokens:  # "thanks in advance": nothing to match
            continue
        after = pieces[number + 1] if number + 1 < len(pieces) else ""
        asks = "?" in after or _ASKS.match(fold(clause)) is not None
        topic = any(index.weights.get(token, 0.0) >= topical and token not in _STORY for token in tokens)
        # (A bare "how long?" or "why?" after a statement asks about it too.)
        backward = bool(_POINTS_BACK.search(clause) or _REFERS.search(clause))
        elliptic = not backward and set(tokens) <= _QUESTION_TOKENS
        if clauses and not topic and (backward or elliptic):
            start = next((i for i in range(len(clauses) - 1, -1, -1) if topics[i]), 0)
            if not any(topics) and backward:  # nothing before names a topic: "it" is what the guide is about
                joined.append((f"{clause} {index.subject}", asks))
            if _POINTS_BACK.search(clause):
                joined.append((" ".join([*(text for text, _ in clauses[start:]), clause]), asks))
                if any(topics) and index.subject not in tokens:
                    # and with just the words that named the topic: "my consent form lists 'pneumothorax' as a
                    # risk and the doctor said it too fast. what is that?" asks what a pneumothorax is.
                    before = index.lexicon.analyse(clauses[start][0])
                    named = [word for word in before.words
                             if index.weights.get(stem(word), 0.0) >= topical and stem(word) not in _STORY]
                    joined.append((" ".join([*named, clause]), asks))
                if asks:  # what it points back to is what the question is about
                    clauses[start:] = [(text, True) for text, _ in clauses[start:]]
            else:  # with the words of that clause that the knowledge base knows
                before = index.lexicon.analyse(clauses[start][0])
                kept = [word for word in before.words if stem(word) in index.weights and stem(word) not in _STORY]
                joined.append((" ".join([*kept, clause]), asks))
            continue
        clauses.append((clause, asks))
        topics.append(topic)
    if len(clauses) > 1 and not joined and not any(asks for _, asks in clauses):
        clauses[-1] = (clauses[-1][0], True)
    parts = clauses + joined
    return [text for text, asks in parts if asks], [text for text, asks in parts if not asks]


def clause_parts(text: str) -> list[tuple[str, bool]]:
    """The message's clauses, each with whether it asks (starts like a question, or a "?" follows it)."""
    pieces = _CLAUSE.split(text[:MAX_MATCH_CHARS])
    ends = [*pieces[1::2], ""]
    return [(clause, "?" in end or _ASKS.match(fold(clause)) is not None)
            for clause, end in zip(pieces[::2], ends, strict=True) if clause.strip()]


def starts_asking(text: str) -> bool:
    """Whether the text starts like a question ("how", "can", "is"... after "so", "and", "hi"...)."""
    return _ASKS.match(fold(text)) is not None


def asks_or_names(index: Index, text: str) -> bool:
    """Whether the text asks something (a "?" or a clause that starts like a question) or names a topic of the
    knowledge base in a word that is not everyday English: what a greeting's tail must not do to stay small talk
    ("hi, asking for my mum", "hello, I've had my port a few months now")."""
    if "?" in text or any(_ASKS.match(fold(clause)) for clause in _CLAUSE.split(text[:MAX_MATCH_CHARS])[::2]):
        return True
    return _topic(index, [text], everyday=False) >= TOPIC_SHARE * index.top_weight / 1.5


def _topic(index: Index, texts: list[str], everyday: bool = True) -> float:
    """The weight of the most telling word in the texts that is not a story word (nor, unless `everyday`, a very
    common English word such as "which" or "real"): how plainly they name a topic."""
    found = 0.0
    for text in texts:
        analysis = index.lexicon.analyse(text)
        for token in analysis.tokens:
            if token not in _STORY and (everyday or token not in analysis.common):
                found = max(found, index.weights.get(token, 0.0))
    return found


def _idf(entries: int, containing: int) -> float:
    """How much a word tells entries apart: high for a word only one entry uses, low but never zero for "port"."""
    return math.log(1 + (entries + 1) / (containing + 0.5))


_ASIDE = re.compile(r"[.?!;:\n,]+|\s+but\s+|\s+-+\s+", re.IGNORECASE)
# ("I don't really know what one is" denies nothing: it is the question.)
_DENIED = re.compile(r"^(?:no|not|never|nothing|without|none|i (?:do|did|have|am|was) not|i (?:have|had) no|"
                     r"there (?:is|are|was|were|has been) no|(?:it|that) (?:is|was) not)\b"
                     r"(?! (?:really |quite |fully |even )?(?:know|understand|get|remember|see|sure)\b)")
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
    message = _KISSES.sub("", message)
    asked = message
    message = _set_aside(message)
    if message != asked and _topic(index, [message], everyday=False) < TOPIC_SHARE * index.top_weight / 1.5:
        message = asked  # what is left names no topic: the aside held it ("...dressings last year. the same?")
    analysis = index.lexicon.analyse(message)
    tokens = analysis.tokens
    unknown = tuple(dict.fromkeys(t for t in tokens if t not in index.weights))
    if not tokens:
        return Decision("fallback", (), "no informative words", tokens, analysis.repairs)
    best = _rank(index, tokens, 1.0, analysis.common)
    if message != asked:  # a denied aside can still name the topic: "I don't have cancer, why a port?"
        whole = index.lexicon.analyse(asked)
        for entry, hit in _rank(index, whole.tokens, 1.0, whole.common, best).items():
            if hit[0] > best.get(entry, (0.0, -1))[0]:
                best[entry] = hit
    questions, statements = _clauses(index, message)
    topical = TOPIC_SHARE * index.top_weight
    top = max((hit[0] for hit in best.values()), default=0.0)
    if statements and top < EXACT and _topic(index, questions) >= max(topical / 1.5,
                                                                      STORY_TOPIC * _topic(index, statements)):
        # A story around a question that names its own topic: the question says what to answer, in full, and
        # the story's sentences are not matched alone ("my husband gets his port next week. can he swim?").
        parts, factor = questions, 1.0
    else:
        # A clear match of the whole message needs no second look.
        parts, factor = ([*questions, *statements] if top < CLEAR_WHOLE else []), _CLAUSE_FACTOR
    told = frozenset(statements) if questions and factor != 1.0 else frozenset()
    if len(parts) > 1 or (parts and factor == 1.0):
        for clause in parts:
            # A story sentence beside a question is less likely to be what is asked than the question.
            weight = factor * (STATEMENT_FACTOR if clause in told else 1.0)
            part = index.lexicon.analyse(clause)
            clause_tokens = part.tokens
            distinct = set(clause_tokens)
            # The question inside a story is scored alone even as one word ("... before chemo starts. risks??").
            alone = len(distinct) >= MIN_CLAUSE_TOKENS or (
                factor == 1.0 and any(index.weights.get(t, 0.0) >= topical / 1.5 for t in distinct))
            if alone and len(clause_tokens) < len(tokens):
                for entry, hit in _rank(index, clause_tokens, weight, part.common, best).items():
                    if hit[0] > best.get(entry, (0.0, -1))[0]:
                        best[entry] = hit
    ranked = sorted(best.items(), key=lambda item: (-item[1][0], item[0]))
    candidates = tuple(
        Candidate(index.entry_ids[e], index.questions[e], round(s, 3), index.phrasing_texts[p])
        for e, (s, p) in ranked[: settings.max_candidates + 4]
    )
    return _decide(candidates, settings, tokens, analysis.repairs, unknown)


def _rank(index: Index, tokens: tuple[str, ...], factor: float, common: frozenset[str],
          floors: Mapping[int, tuple[float, int]] | None = None) -> dict[int, tuple[float, int]]:
    """The best score of each likely entry, and the phrasing that gave it.

    Only the entries sharing the most informative words with the message are scored phrasing by phrasing
    (a cheap sum over the entry index first), so matching stays fast as the knowledge base grows.

    `floors` holds scores that the caller keeps unless this ranking beats them (a clause against the whole
    message): an entry's phrasings that cannot beat its floor are not scored in full. Such an entry may then come
    back with less than its best score, but never above its floor, so the caller's result is the same."""
    # The distinct words in the message's order, not a set's: sums of weights then come out the same to the last
    # bit in every process, so near-ties break the same way whatever Python's string hashing.
    message_set = tuple(dict.fromkeys(tokens))
    numbers = index.token_numbers
    message_pairs = frozenset(itertools.pairwise(numbers.get(token, -1) for token in tokens))
    folded = " ".join(tokens)
    weights = index.weights
    known = {token: weights[token] for token in message_set if token in weights}
    known_numbers = {numbers[token]: weight for token, weight in known.items()}  # the same, by token number
    # Each entry's weight of message words it knows. A list rather than a dict, and the shortlist taken by value
    # first: at 10 000 entries a word like "port" touches every entry, and this is most of the work.
    overlap = [0.0] * len(index.entry_ids)
    for token, weight in known.items():
        for entry in index.entry_postings[token]:
            overlap[entry] += weight
    cut = heapq.nlargest(SHORTLIST, overlap)[-1] if overlap else 0.0
    likely = [(entry, value) for entry, value in enumerate(overlap) if value >= cut and value > 0]
    shortlist = sorted(likely, key=lambda item: (-item[1], item[0]))[:SHORTLIST]
    best: dict[int, tuple[float, int]] = {}
    beaten = []  # entries that cannot beat their floor here: not scored, but weighed by the naive Bayes step
    for entry, inside in shortlist:
        outside = _outside(index, index.entry_counts[entry], message_set, common)
        floor = floors[entry][0] if floors and entry in floors else 0.0
        # The most an entry can score: every phrasing fully covered, explaining at most `inside` of the message.
        if floor > 0 and factor * (min(1.0, inside / (inside + outside)) ** EXPLAIN_EXP + _FINISH_MOST) < floor:
            beaten.append(entry)
            continue
        hit = _entry_best(index, entry, known_numbers, message_pairs, inside, outside, folded, factor, floor)
        if hit[1] >= 0:
            best[entry] = hit
    if NB_SHARE and best:
        posterior = _posterior(index, message_set, [*best, *beaten])
        peak = max(posterior.values())
        for entry, (score, number) in best.items():
            if score < factor * EXACT:  # a message that is word for word a phrasing is that entry's question
                best[entry] = (score * (1 - NB_SHARE + NB_SHARE * posterior[entry] / peak), number)
    return best


def _entry_best(index: Index, entry: int, known: Mapping[int, float], pairs: frozenset[tuple[int, int]],
                inside: float, outside: float, folded: str, factor: float, floor: float) -> tuple[float, int]:
    """The entry's best phrasing score (times `factor`) and that phrasing's number; (0.0, -1) if none scores.

    A phrasing's score is how much of the phrasing the message covers, times how much of the message the
    phrasing (and, at half credit, the rest of its entry's vocabulary) explains, plus a little for word pairs
    and wording in common (_finish). `inside` is the weight of the message words the entry knows, `outside` the
    penalty for the others.

    The result is that of scoring every phrasing, the first of equal scores winning, but fewer are scored in
    full: the phrasing that covers most of its own words is scored first, the entry will score at least that,
    and a phrasing that cannot reach it (nor `floor`) cannot change the result."""
    rows = index.rows(entry)
    sums = [0.0] * len(rows.numbers)  # each phrasing's weight of the words it shares with the message
    places = rows.places
    for token, weight in known.items():  # in the message's order, so every process sums alike
        for place in places.get(token, ()):
            sums[place] += weight
    weights = index.phrasing_weights
    numbers = rows.numbers
    # (number, weight of the words it shares with the message, the share of its own weight that is)
    found = [(numbers[place], shared, shared / weights[numbers[place]]) for place, shared in enumerate(sums)
             if shared > 0]
    if not found:
        return 0.0, -1
    whole = inside + outside
    # Most covered first (a stable sort: phrasing order among equals). Once a phrasing's coverage, plus the most
    # that _finish adds, cannot reach what the entry surely scores, no later one can: the rest are not scored.
    found.sort(key=_COVERED, reverse=True)
    first_number, shared, covered = found[0]
    reach = covered ** COVER_EXP
    explained = min(1.0, (shared + VOCAB_CREDIT * (inside - shared)) / whole)
    guess = factor * _finish(index, first_number, reach * explained ** EXPLAIN_EXP, pairs, folded)
    top, top_number = (guess, first_number) if guess > 0 else (0.0, -1)
    sure = max(guess, floor)
    most = min(1.0, inside / whole) ** EXPLAIN_EXP  # `explained` is at most inside / whole, shared at most inside
    for number, shared, covered in itertools.islice(found, 1, None):
        reach = covered ** COVER_EXP
        # A margin far above rounding, so that what is passed over would surely not have counted, nor tied.
        need = max(top, sure) / factor - 1e-9 if top_number >= 0 else 0.0
        if reach * most + _FINISH_MOST < need:
            break
        explained = min(1.0, (shared + VOCAB_CREDIT * (inside - shared)) / whole)
        start = reach * explained ** EXPLAIN_EXP
        if start + _FINISH_MOST < need:
            continue
        score = factor * _finish(index, number, start, pairs, folded)
        if score > top or (score == top and score > 0 and number < top_number):  # the first of equals wins
            top, top_number = score, number
    return top, top_number


_COVERED = operator.itemgetter(2)
_FINISH_MOST = 0.055  # the most that _finish adds to a base score: 0.03 for a word pair, 0.025 for wording


def _posterior(index: Index, message: tuple[str, ...], entries: Iterable[int]) -> dict[int, float]:
    """How likely each candidate entry is to have produced the message's known words, judging by how often
    each word occurs across all of that entry's phrasings (multinomial naive Bayes, smoothed)."""
    known = [t for t in message if t in index.weights]
    size = len(index.weights)
    logs = {}
    for entry in entries:
        counts, total = index.entry_counts[entry], index.entry_totals[entry]
        unseen = math.log(NB_ALPHA / (total + NB_ALPHA * size))  # the term of every word the entry lacks
        logs[entry] = sum([math.log((counts[t] + NB_ALPHA) / (total + NB_ALPHA * size)) if t in counts else unseen
                           for t in known])
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
COVER_EXP = 0.5        # base score = covered ** COVER_EXP * explained ** EXPLAIN_EXP (see _entry_best)
EXPLAIN_EXP = 0.7
STORY_TOPIC = 0.8      # a question names its own topic when its most telling word weighs this share of the story's
TOPIC_SHARE = 0.75     # a word weighing this share of the top weight names a topic (see _clauses)


def _outside(index: Index, vocab: Mapping[str, int], message: tuple[str, ...], everyday: frozenset[str]) -> float:
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


def _finish(index: Index, number: int, score: float, pairs: frozenset[tuple[int, int]], folded: str) -> float:
    """A phrasing's base score plus 0.03 when it shares a word pair with the message, plus or minus 0.025 for how
    close its wording is, within 0 and 1."""
    tokens = index.tokens_of(number)
    if not pairs.isdisjoint(itertools.pairwise(tokens)):
        score += 0.03
    ratio: float = fuzz.ratio(folded, index.text_of(number))
    score += 0.05 * (ratio / 100.0 - 0.5)
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
    out: list[tuple[str, str, str, float, float]] = []
    for text, entry in zip(index.phrasing_texts, index.phrasing_entries, strict=True):
        own = index.entry_ids[entry]
        if own.startswith(GAP_PREFIX):
            continue
        analysis = index.lexicon.analyse(text)
        ranked = _rank(index, analysis.tokens, 1.0, analysis.common)
        if not ranked:
            continue
        others = [(hit[0], -other) for other, hit in ranked.items() if other != entry]
        if not others:
            continue
        best_score, best_entry = max(others)
        best_entry = -best_entry
        own_score = ranked.get(entry, (0.0, 0))[0]
        if best_score >= own_score:
            out.append((own, text, index.entry_ids[best_entry], round(own_score, 3), round(best_score, 3)))
    return out
