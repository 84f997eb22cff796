"""Turn free text into matching tokens: case, accents, contractions, lay-term synonyms, typo repair and stems."""

from __future__ import annotations

import functools
import gzip
import itertools
import json
import pkgutil
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import snowballstemmer
from rapidfuzz import process
from rapidfuzz.distance import OSA

# Matching looks at this much of a message; the rest of a 100 000-character paste adds nothing but cost.
MAX_MATCH_CHARS = 1200

# Words that carry no topic. Question words (what, how, where, who, why, when, long, many, much) are kept on
# purpose: they tell "how long does it stay" from "how many times" and "where does it go".
FILLER = frozenset(
    """
    a an the and or but so if then than that this these those there here it its
    i me my mine myself we us our you your yours he him his she her they them their
    is are am was were be been being do does did done doing have has had having
    can could will would shall should may might must ought
    of to in on at for with about from by into onto up as per via
    please pls just really very quite also too any some anything something all
    ok okay um uh hmm well oh yes yeah no not
    get gets got getting go goes going went gone
    know tell told telling say said saying think thought wonder wondering wondered
    want wants wanted wanting like
    question questions ask asking asked anyone somebody someone
    thing things stuff bit lot lots kind sort
    one ones actually basically still even ever again already now today once itself myself yourself
    im ive id dont cant wont isnt doesnt didnt
    hi hello hey thanks thank cheers advance xx xxx lol haha portbot bot sorry bother bothering help
    """.split()
)

# Words that tell a story around a question rather than ask it: people, feelings, time, hearsay. When a
# message holds one that the matched phrasing lacks, it counts only a little against the match, whereas an
# unknown topical word ("insurance", "tattoo") counts fully and leads to "not covered".
STORY_WORDS = frozenset(
    """
    mum mom mother dad father husband wife partner son daughter sister brother friend grandson granddaughter
    grandmother grandma grandad grandpa family kid kids child aunt uncle boyfriend girlfriend neighbour
    nurse nurses oncologist consultant gp team staff
    nervous worried worry worrying scared afraid anxious frightened terrified curious confused unsure
    concerned panicking stressed upset
    honestly actually really literally basically totally seriously probably maybe perhaps definitely exactly
    whatever anyway anyhow btw lol though although because since while
    today tomorrow yesterday tonight morning evening week weeks month months year years ago next last soon
    monday tuesday wednesday thursday friday saturday sunday weekend january february march april may june july
    august september october november december
    told tell said say says explained mentioned heard hear read reading saw seen looked looking googled online
    internet leaflet letter booklet form consent write writes writing wrote behalf explain
    start starting started begin beginning plan planned booked appointment cycle cycles course
    new first second third old age aged years
    little bit lot lots much many quite pretty so very too also again else other another same
    someone somebody anyone anybody everyone everybody people person
    thing things stuff way ways part whole
    good bad great fine okay alright ok sure right wrong
    always sometimes often usually normally generally typically normal
    """.split()
)

# Occurrences in pyspellchecker's English word list from which a word counts as very common.
COMMON_WORD = 100_000

_CONTRACTIONS = (
    (re.compile(r"\bwon't\b"), "will not"),
    (re.compile(r"\bcan't\b"), "can not"),
    (re.compile(r"\bcannot\b"), "can not"),
    (re.compile(r"\bshan't\b"), "shall not"),
    (re.compile(r"n't\b"), " not"),
    (re.compile(r"'re\b"), " are"),
    (re.compile(r"'m\b"), " am"),
    (re.compile(r"'ve\b"), " have"),
    (re.compile(r"'ll\b"), " will"),
    (re.compile(r"'d\b"), " would"),
    # "what's" as "whats" reads ("what is"); any other "'s" is a possessive ("mum's port") and goes.
    (re.compile(r"\b(what|how|where|who|that|there)'s\b"), r"\1 is"),
    (re.compile(r"'s\b"), ""),
)

# Contractions typed without the apostrophe, which phones and hurried thumbs produce all the time.
_BARE_CONTRACTIONS = {
    "dont": "do not", "doesnt": "does not", "didnt": "did not", "cant": "can not", "wont": "will not",
    "isnt": "is not", "arent": "are not", "wasnt": "was not", "werent": "were not", "havent": "have not",
    "hasnt": "has not", "hadnt": "had not", "shouldnt": "should not", "wouldnt": "would not",
    "couldnt": "could not", "im": "i am", "ive": "i have", "youre": "you are", "theyre": "they are",
    "whats": "what is", "hows": "how is", "wheres": "where is", "whos": "who is", "thats": "that is",
}

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'", "\u00b4": "'", "\u02bc": "'"})
_NOT_WORD = re.compile(r"[^a-z0-9.']+")
_LOOSE_DOT = re.compile(r"(?<![0-9])\.|\.(?![0-9])")
_LOCAL = threading.local()  # a snowball stemmer keeps state while it stems: one per thread


def fold(text: str) -> str:
    """Lower-case, accent-free text with contractions expanded and punctuation turned into single spaces."""
    return " ".join(fold_words(text))


def fold_words(text: str) -> list[str]:
    """fold(text) as a list of words.

    Nothing fold does reaches across whitespace, so it works piece by piece (the pieces between whitespace), and
    each distinct piece is folded only once: phrasings, answers and messages repeat the same words all the time."""
    words: list[str] = []
    for piece in text[: MAX_MATCH_CHARS * 2].split():
        words += _fold_piece(piece)
    return words


@functools.lru_cache(maxsize=50_000)
def _fold_piece(piece: str) -> tuple[str, ...]:
    """The folded words of one piece of text that holds no whitespace."""
    if piece.isascii():  # the usual case: NFKD and accent removal change nothing, and casefold is lower
        text = piece.translate(_APOSTROPHES).lower()
    else:
        text = unicodedata.normalize("NFKD", piece).translate(_APOSTROPHES).casefold()
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
    if "'" in text or "cannot" in text:  # every contraction pattern needs one or the other
        for pattern, replacement in _CONTRACTIONS:
            text = pattern.sub(replacement, text)
    words: list[str] = []
    for word in _LOOSE_DOT.sub(" ", _NOT_WORD.sub(" ", text)).replace("'", " ").split():
        bare = _BARE_CONTRACTIONS.get(word)
        if bare is None:
            words.append(word)
        else:
            words += bare.split()
    return tuple(words)


@functools.lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """The word's stem, so that "swimming", "swim" and "swims" meet."""
    stemmer = getattr(_LOCAL, "stemmer", None)
    if stemmer is None:
        stemmer = _LOCAL.stemmer = snowballstemmer.stemmer("english")
    return str(stemmer.stemWord(word))


@dataclass(frozen=True, slots=True)
class Analysis:
    """What normalisation made of a message, kept so the matcher can explain itself."""

    words: tuple[str, ...]
    tokens: tuple[str, ...]
    repairs: tuple[tuple[str, str], ...]
    common: frozenset[str] = frozenset()  # tokens whose word is very common in general English


ANALYSED_KEPT = 4_096  # texts (a few MB at most: texts are cut to MAX_MATCH_CHARS)
JOIN_MIN = 7  # a joined word is at least this long: "in to" and "any way" stay as they are


@dataclass(frozen=True, slots=True)
class Lexicon:
    """The knowledge base's own vocabulary and its synonym table, ready to normalise messages against."""

    synonyms: Mapping[tuple[str, ...], tuple[str, ...]]
    longest_variant: int
    vocabulary: frozenset[str]
    by_frequency: tuple[str, ...]
    frequency: Callable[[str], int] = field(default=lambda word: 0, compare=False, repr=False)
    # For each word that starts a synonym variant, the lengths of those variants, longest first.
    starts: Mapping[str, tuple[int, ...]] = field(default_factory=dict, compare=False, repr=False)
    # The one-word variants, and the first two words of the longer ones: a text holding neither has no variant.
    singles: frozenset[str] = field(default=frozenset(), compare=False, repr=False)
    openers: frozenset[tuple[str, str]] = field(default=frozenset(), compare=False, repr=False)
    _repairs: dict[str, str | None] = field(default_factory=dict, compare=False, repr=False)
    # Each piece of text (between whitespace) as folded, repaired words, the repairs made on the way, and the
    # folded words before repair.
    _pieces: dict[str, tuple[tuple[str, ...], tuple[tuple[str, str], ...], tuple[str, ...]]] = field(
        default_factory=dict, compare=False, repr=False)
    _joins: dict[tuple[str, ...], str | None] = field(default_factory=dict, compare=False, repr=False)
    # Whole texts already analysed: the matcher reads a long message's clauses several times (to split it, to
    # find which clause names a topic, to score it), and the same short questions come again and again.
    _analysed: dict[str, Analysis] = field(default_factory=dict, compare=False, repr=False)
    # The words of JOIN_MIN letters or more by length, most frequent first, and each word's place by frequency.
    long_words: Mapping[int, tuple[str, ...]] = field(default_factory=dict, compare=False, repr=False)
    rank: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)
    # The last three letters of those words, and for each the lengths of the words ending so.
    endings: Mapping[str, frozenset[int]] = field(default_factory=dict, compare=False, repr=False)

    def forget(self) -> None:
        """Empty the caches of pieces of text, joined words and analysed texts (they refill as messages come)."""
        self._pieces.clear()
        self._joins.clear()
        self._analysed.clear()

    def analyse(self, text: str) -> Analysis:
        """Fold, repair typos, apply synonyms, stem and drop filler."""
        text = text[:MAX_MATCH_CHARS]
        found = self._analysed.get(text)
        if found is None:
            replaced, content, repairs = self._content(text)
            tokens = tuple(map(stem, content))
            common = frozenset(stem(w) for w in content if (self.frequency(w) or 0) >= COMMON_WORD)
            found = Analysis(tuple(replaced), tokens, tuple(repairs), common)
            if len(self._analysed) >= ANALYSED_KEPT:
                self._analysed.clear()  # the messages of the last while are what is asked again
            self._analysed[text] = found
        return found

    def tokens(self, text: str, near_joins: bool = True) -> tuple[str, ...]:
        """analyse(text).tokens. Without `near_joins`, split words are only joined when they spell a knowledge-base
        word exactly (see _join_split), and nothing is kept: building the index normalises hundreds of thousands
        of phrasings, which staff write with care and are read once."""
        if near_joins:
            return self.analyse(text).tokens
        return tuple(map(stem, self._content(text, near_joins)[1]))

    def _content(self, text: str, near_joins: bool = True) -> tuple[list[str], list[str], list[tuple[str, str]]]:
        """The words after typo repair and synonyms, those of them that are not filler, and the repairs made."""
        words: list[str] = []
        folded: list[str] = []
        repairs: list[tuple[str, str]] = []
        pieces = self._pieces
        for piece in text[:MAX_MATCH_CHARS].split():  # as fold_words does, with each piece's result kept
            known = pieces.get(piece)
            if known is None:
                known = self._piece(piece)
            words += known[0]
            folded += known[2]
            if known[1]:
                repairs += known[1]
        if len(folded) > 1:
            words = self._join_split(folded, words, repairs, near_joins)
        replaced = self.apply_synonyms(words)
        return replaced, [word for word in replaced if word not in FILLER], repairs

    def _piece(self, piece: str) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...], tuple[str, ...]]:
        fixed: list[str] = []
        repairs: list[tuple[str, str]] = []
        folded = _fold_piece(piece)
        for word in folded:
            better = self.repair(word)
            if better is not None:
                repairs.append((word, better))
                word = better
            fixed.append(word)
        known = (tuple(fixed) if repairs else folded, tuple(repairs), folded)
        if len(self._pieces) < 50_000:
            self._pieces[piece] = known
        return known

    def _join_split(self, folded: list[str], words: list[str], repairs: list[tuple[str, str]],
                    near_joins: bool) -> list[str]:
        """The words with a long word split in pieces joined again, as voice typing and phone keyboards split
        them: "hep a rin" is heparin, "inter ventional radio logist" an interventional radiologist, "new mo
        thorax" a pneumothorax. A run of two to four words joins when one of them is neither a knowledge-base word
        nor filler and together they spell a knowledge-base word; or, when at least half of them are such
        fragments, a misspelling of one (see _joined)."""
        vocabulary = self.vocabulary
        # A piece of a split word is unknown to the knowledge base; in a message, also short ("mo", "hep") or no
        # English word ("rin", "scopy"): "husband" and "friday" are unknown too, but whole.
        fragments = [word not in vocabulary and word not in FILLER and word.isalpha()
                     and (not near_joins or len(word) <= 5 or not self.frequency(word)) for word in folded]
        if not any(fragments):  # the usual case
            return words
        out: list[str] = []
        i, count = 0, len(folded)
        while i < count:
            for size in (4, 3, 2):
                run = tuple(folded[i:i + size])
                if len(run) == size and any(fragments[i:i + size]):
                    joined = self._joined(run, near_joins)
                    if joined is not None:
                        out.append(joined)
                        repairs.append((" ".join(run), joined))
                        i += size
                        break
            else:
                out.append(words[i])
                i += 1
        return out

    def _joined(self, run: tuple[str, ...], near_joins: bool) -> str | None:
        key = (*run, "") if near_joins else run  # the two kinds of result are kept apart
        if key in self._joins:
            return self._joins[key]
        joined = "".join(run)
        found = None
        if len(joined) >= JOIN_MIN and joined.isalpha():
            if joined in self.vocabulary:
                found = joined
            elif (near_joins and len(joined) >= JOIN_MIN + 1 and not self.frequency(joined)
                  and 2 * sum(word not in self.vocabulary and word not in FILLER for word in run) >= len(run)):
                # A misspelling only of an uncommon word with the same ending: "new mo thorax" is pneumothorax,
                # but "go runing" is not "morning", nor "is planned" "implanted". (With no word of about its
                # length ending so, there is nothing to look for.)
                lengths = self.endings.get(joined[-3:], frozenset())
                near = any(abs(length - len(joined)) <= 2 for length in lengths)
                better = self._near_long_word(joined) if near else None
                if (better is not None and better not in run
                        and better[-3:] == joined[-3:] and self.frequency(better) < COMMON_WORD):
                    found = better
        if len(self._joins) < 50_000:
            self._joins[key] = found
        return found

    def _near_long_word(self, word: str) -> str | None:
        """The most frequent knowledge-base word of JOIN_MIN letters or more within two edits of `word`: what
        repair() would find for it, among only the words of about its length."""
        size = len(word)
        candidates = [w for length in range(size - 2, size + 3) for w in self.long_words.get(length, ())]
        found = process.extract(word, candidates, scorer=OSA.distance, score_cutoff=2, limit=8)
        best = min(found, key=lambda hit: (hit[1], self.rank[hit[0]]), default=None)
        return None if best is None else best[0]

    def apply_synonyms(self, words: list[str]) -> list[str]:
        """Replace each patient variant (longest first) with the knowledge base's own word."""
        if self.singles.isdisjoint(words) and self.openers.isdisjoint(itertools.pairwise(words)):
            return list(words)  # nearly half of all phrasings: no loop in Python needed
        starts = self.starts
        found = [i for i, word in enumerate(words) if word in starts]  # where a variant may begin
        out: list[str] = []
        done = 0  # words before this one are in `out` already
        for i in found:
            if i < done:  # inside a variant just replaced
                continue
            out += words[done:i]
            done = i + 1
            for size in starts[words[i]]:
                canonical = self.synonyms.get(tuple(words[i : i + size])) if size <= len(words) - i else None
                if canonical is not None:
                    out += canonical
                    done = i + size
                    break
            else:
                out.append(words[i])
        out += words[done:]
        return out

    def repair(self, word: str) -> str | None:
        """The knowledge-base word a misspelt word most likely meant, or None to leave it alone.

        Real English words are never repaired, so "sleep" does not become "seep" nor "hurt" "heart". Others are
        repaired within one edit (two from seven letters), towards a word with the same first letter unless
        the word is long ("numothorax" still finds "pneumothorax")."""
        if len(word) < 4 or word in self.vocabulary or not word.isalpha():
            return None
        if word in self._repairs:
            return self._repairs[word]
        best = None
        if not self.frequency(word):
            limit = 1 if len(word) < 7 else 2
            found = process.extract(word, self.by_frequency, scorer=OSA.distance, score_cutoff=limit, limit=8)
            for candidate, _distance, _index in sorted(found, key=lambda hit: (hit[1], hit[2])):
                if len(candidate) >= 4 and (candidate[0] == word[0] or len(word) >= 8):
                    best = candidate
                    break
        if len(self._repairs) < 50_000:
            self._repairs[word] = best
        return best


class EnglishWords:
    """The words of pyspellchecker's English word list, and those of them that are very common in general text.
    Typo repair leaves English words alone, and matching counts a very common word that the knowledge base does
    not know less against an answer than a rare one: "normally" or "leave" seldom name a topic, "tattoo" or
    "anaesthetic" do.

    The 128 000 words are kept run together as UTF-8, one string of bytes for each byte length and first two bytes,
    and found with bytes.find at a multiple of the length: under 2 MB, where a set of them held 12 MB (and took
    three times that while it was built from the list), which counts against a large guide's memory. A look-up
    takes about a microsecond."""

    __slots__ = ("_common", "_rows", "_size")

    def __init__(self, pairs: Iterable[tuple[str, int]]) -> None:
        rows: dict[tuple[int, bytes], bytearray] = {}
        common: list[str] = []
        size = 0
        for word, count in pairs:
            if word.isalpha():
                data = word.encode()
                key = (len(data), data[:2])
                row = rows.get(key)
                if row is None:
                    row = rows[key] = bytearray()
                row += data
                size += 1
                if count >= COMMON_WORD:
                    common.append(word)
        self._rows = {key: bytes(row) for key, row in rows.items()}
        self._common = frozenset(common)
        self._size = size

    def __contains__(self, word: object) -> bool:
        if not isinstance(word, str) or not word:
            return False
        data = word.encode(errors="replace")
        size = len(data)
        row = self._rows.get((size, data[:2]))
        if row is None:
            return False
        at = row.find(data)
        while at >= 0:
            if at % size == 0:
                return True
            at = row.find(data, at + 1)
        return False

    def __len__(self) -> int:
        return self._size

    def common(self, word: str) -> bool:
        return word in self._common


@functools.cache
def english_words() -> EnglishWords:
    """The English word list, read once per process (about 0.2 s) on first use."""
    try:
        data = pkgutil.get_data("spellchecker", "resources/en.json.gz")
    except OSError:
        data = None
    if data is None:  # a pyspellchecker that keeps its list elsewhere
        from spellchecker import SpellChecker

        return EnglishWords(_summed(SpellChecker(distance=1).word_frequency.dictionary.items()))
    text = gzip.decompress(data)
    seen = _Seen()
    words = EnglishWords(seen.pairs(text))
    if seen.count != text.count(b":") or seen.capitals:  # escapes, words in capitals or another layout
        words = EnglishWords(_summed(json.loads(text).items()))
    return words


# One "word": count pair of the list as pyspellchecker ships it (a JSON object, one pair a line, in UTF-8).
_PAIR = re.compile(rb'"([^"\\\n]*)": *(\d+)')


class _Seen:
    """Reads the pairs of the shipped list straight from its bytes, one at a time (as one dictionary it would take
    several times the memory), noting what would make the JSON reader give something else."""

    def __init__(self) -> None:
        self.count = 0
        self.capitals = False

    def pairs(self, text: bytes) -> Iterable[tuple[str, int]]:
        for found in _PAIR.finditer(text):
            word = found[1].decode("utf-8")
            self.count += 1
            self.capitals = self.capitals or word != word.lower()
            yield word, int(found[2])


def _summed(pairs: Iterable[tuple[str, int]]) -> Iterable[tuple[str, int]]:
    """Words that differ only in case as one lower-cased word, their counts added up, as SpellChecker reads them."""
    summed: Counter[str] = Counter()
    for word, count in pairs:
        summed[word.lower()] += int(count)
    return summed.items()


def english_frequency(word: str) -> int:
    """COMMON_WORD for a very common English word, 1 for another English word, 0 for anything else. The word
    list is read on the first call (about 0.2 s, once per process): building a matching index does not need it,
    answering does."""
    words = english_words()
    return COMMON_WORD if words.common(word) else 1 if word in words else 0


def build_lexicon(synonyms: Iterable[tuple[str, Iterable[str]]], texts: Iterable[str]) -> Lexicon:
    """A lexicon from (canonical, variants) pairs and every text whose words count as known."""
    table: dict[tuple[str, ...], tuple[str, ...]] = {}
    counts: Counter[str] = Counter()
    for canonical, variants in synonyms:
        target = tuple(fold(canonical).split())
        counts.update(target)
        for variant in variants:
            key = tuple(fold(variant).split())
            counts.update(key)
            if key and key != target:
                table[key] = target
    # Count the pieces between whitespace first and fold each distinct one once: the same as counting the
    # folded words of every text, at a fraction of the cost (texts share most of their words).
    pieces: Counter[str] = Counter()
    for text in texts:
        pieces.update(text[: MAX_MATCH_CHARS * 2].split())
    for piece, count in pieces.items():
        for word in _fold_piece(piece):
            counts[word] += count
    counts.update(FILLER)
    vocabulary = frozenset(word for word in counts if len(word) >= 3)
    by_frequency = tuple(sorted(vocabulary, key=lambda word: (-counts[word], word)))
    longest = max((len(key) for key in table), default=1)
    sizes: dict[str, set[int]] = {}
    for key in table:
        sizes.setdefault(key[0], set()).add(len(key))
    starts = {word: tuple(sorted(found, reverse=True)) for word, found in sizes.items()}
    singles = frozenset(key[0] for key in table if len(key) == 1)
    openers = frozenset((key[0], key[1]) for key in table if len(key) > 1)
    long_words: dict[int, list[str]] = {}
    for word in by_frequency:
        if len(word) >= JOIN_MIN and word.isalpha():
            long_words.setdefault(len(word), []).append(word)
    rank = {word: number for number, word in enumerate(by_frequency) if len(word) >= JOIN_MIN}
    endings: dict[str, set[int]] = {}
    for size, words in long_words.items():
        for word in words:
            endings.setdefault(word[-3:], set()).add(size)
    return Lexicon(table, longest, vocabulary, by_frequency, english_frequency, starts, singles, openers,
                   long_words={size: tuple(words) for size, words in long_words.items()}, rank=rank,
                   endings={ending: frozenset(sizes) for ending, sizes in endings.items()})
