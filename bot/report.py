"""Pure summaries of the stored rows for staff: what was asked, what helped, and what the guide does not cover yet."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from rapidfuzz import fuzz, process

from bot.matching import match
from bot.normalize import FILLER, fold, stem
from bot.replies import Brain
from bot.store import Row

GROUP_SIMILARITY = 70.0  # rapidfuzz token_set_ratio (0-100) at which two uncovered questions count as one
MAX_EXAMPLES = 3
_MATCHED = 10  # distinct wordings of a group tried against the knowledge base for its nearest entry
UNCOVERED_KINDS = ("fallback", "clarify", "none_of_these")
KIND_LABELS = {"answer": "answered", "clarify": "asked which one", "fallback": "not covered",
               "urgent": "urgent", "chat": "small talk", "feedback": "feedback", "none_of_these": "none of these"}
NEW_ENTRY = "needs a new entry (or is outside the guide)"
# Words nearly every question holds; they say nothing about which questions belong together.
_EVERYWHERE = frozenset({"port"})


@dataclass(frozen=True, slots=True)
class EntryCount:
    """How often one entry was given as the answer, and the feedback it got."""

    entry: str
    question: str | None  # None when the entry is no longer in the knowledge base
    answers: int
    helpful: int
    unhelpful: int


@dataclass(frozen=True, slots=True)
class Group:
    """Uncovered questions that read alike, with the entry that came nearest and what staff could do."""

    count: int
    kinds: tuple[tuple[str, int], ...]
    examples: tuple[str, ...]
    nearest: str | None
    nearest_question: str | None
    score: float | None
    suggestion: str


@dataclass(frozen=True, slots=True)
class Report:
    since: dt.datetime | None
    first: dt.datetime | None
    last: dt.datetime | None
    total: int
    kinds: tuple[tuple[str, int], ...]
    entries: tuple[EntryCount, ...]
    none_of_these: int
    groups: tuple[Group, ...]


def build_report(rows: Sequence[Row], brain: Brain, since: dt.datetime | None = None) -> Report:
    """Counts by kind and entry, feedback per entry, and the uncovered questions grouped, most frequent first."""
    kinds = Counter(row.kind for row in rows)
    answers = Counter(row.entry for row in rows if row.kind == "answer" and row.entry)
    up = Counter(row.entry for row in rows if row.kind == "feedback" and row.entry and row.helpful is True)
    down = Counter(row.entry for row in rows if row.kind == "feedback" and row.entry and row.helpful is False)
    entries = []
    for entry_id in sorted(set(answers) | set(up) | set(down), key=lambda e: (-answers[e], -up[e] - down[e], e)):
        found = brain.kb.entry(entry_id)
        entries.append(EntryCount(entry_id, found.question if found else None, answers[entry_id], up[entry_id],
                                  down[entry_id]))
    uncovered = [row for row in rows if row.kind in UNCOVERED_KINDS and row.message]
    clusters = cluster([row.message or "" for row in uncovered])
    groups = [_group(brain, [uncovered[i] for i in members]) for members in clusters]
    groups.sort(key=lambda g: (-g.count, g.examples[0].casefold()))
    return Report(since, rows[0].at if rows else None, rows[-1].at if rows else None, len(rows),
                  tuple(sorted(kinds.items(), key=lambda item: (-item[1], item[0]))), tuple(entries),
                  kinds["none_of_these"], tuple(groups))


def similarity_key(text: str) -> str:
    """The words of a question that say what it is about: folded, stemmed, without filler."""
    words = (stem(word) for word in fold(text).split() if word not in FILLER)
    return " ".join(dict.fromkeys(word for word in words if word not in _EVERYWHERE))


def cluster(texts: Sequence[str], threshold: float = GROUP_SIMILARITY) -> list[list[int]]:
    """Indexes of `texts` in groups (single link: alike to any member joins), each group in input order."""
    keys = [similarity_key(text) or "\0" + fold(text) for text in texts]
    unique = list(dict.fromkeys(keys))
    parent = list(range(len(unique)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, key in enumerate(unique):
        if key.startswith("\0"):
            continue  # nothing but filler words: only the very same text joins it
        alike = process.extract(key, unique, scorer=fuzz.token_set_ratio, score_cutoff=threshold, limit=None)
        for _, _, j in alike:
            if j > i and not unique[j].startswith("\0"):
                parent[root(j)] = root(i)
    position = {key: root(i) for i, key in enumerate(unique)}
    groups: dict[int, list[int]] = {}
    for index, key in enumerate(keys):
        groups.setdefault(position[key], []).append(index)
    return list(groups.values())


def phrasing_threshold(brain: Brain) -> float:
    """Halfway between "ask which one" and "answer": a question scoring this close to an entry is most likely
    that entry in words the guide does not list yet; below it, the entry is probably only a neighbour."""
    return (brain.settings.matching.clarify + brain.settings.matching.answer) / 2


def _group(brain: Brain, rows: list[Row]) -> Group:
    by_text = Counter(fold(row.message or "") for row in rows)
    shown: dict[str, str] = {}
    for row in rows:
        shown.setdefault(fold(row.message or ""), " ".join((row.message or "").split()))
    ranked = sorted(by_text, key=lambda text: (-by_text[text], len(text), text))
    examples = tuple(shown[text] for text in ranked[:MAX_EXAMPLES])
    # The nearest entry is the best match of any of the group's wordings: the shortest may be the vaguest.
    matches = (match(brain.index, shown[text], brain.settings.matching).best for text in ranked[:_MATCHED])
    best = max((c for c in matches if c is not None), key=lambda c: c.score, default=None)
    if best is not None and best.score >= phrasing_threshold(brain):
        suggestion = f"add as a phrasing of {best.entry}"
    else:
        suggestion = NEW_ENTRY
    kinds = Counter(row.kind for row in rows)
    return Group(len(rows), tuple((k, kinds[k]) for k in UNCOVERED_KINDS if kinds[k]), examples,
                 best.entry if best else None, best.question if best else None, best.score if best else None,
                 suggestion)


# -- presentation --------------------------------------------------------------------------------------------------


def report_text(report: Report, top: int | None = None) -> str:
    """The report as plain text for a terminal or an e-mail."""
    out = [f"PortBot report: {_period(report)}", f"{report.total} replies and button presses recorded", ""]
    if report.kinds:
        out.append("Replies by kind")
        out += [f"  {KIND_LABELS.get(kind, kind):<17} {count:>5}" for kind, count in report.kinds]
        out.append("")
    if report.entries:
        out.append("Answers by entry (answers, helpful 👍, not helpful 👎)")
        width = max(len(e.entry) for e in report.entries)
        for e in report.entries:
            gone = "" if e.question is not None else "  (no longer in the knowledge base)"
            out.append(f"  {e.entry:<{width}} {e.answers:>5}   👍 {e.helpful:<4} 👎 {e.unhelpful}{gone}")
        out.append("")
    out.append(f'"None of these" pressed: {report.none_of_these}')
    out.append("")
    groups = report.groups if top is None else report.groups[:top]
    if not groups:
        out.append("No uncovered questions were kept in this period.")
    else:
        out.append("Questions the guide did not answer, most frequent first")
        for number, group in enumerate(groups, 1):
            detail = ", ".join(f"{count} {KIND_LABELS[kind]}" for kind, count in group.kinds)
            out.append(f"{number:>3}. asked {group.count} time{'s' if group.count != 1 else ''} ({detail})")
            out += [f'       "{example}"' for example in group.examples]
            if group.nearest is not None and group.score is not None:
                out.append(f"       nearest entry: {group.nearest} ({group.score:.2f}) - {group.nearest_question}")
            out.append(f"       suggestion: {group.suggestion}")
        if top is not None and len(report.groups) > top:
            out.append(f"     ... and {len(report.groups) - top} more groups")
    return "\n".join(out)


def report_json(report: Report) -> dict[str, object]:
    """The report for tools: plain JSON types, times in ISO 8601 UTC."""
    return {
        "since": _iso(report.since), "first": _iso(report.first), "last": _iso(report.last),
        "total": report.total,
        "kinds": dict(report.kinds),
        "entries": [{"entry": e.entry, "question": e.question, "answers": e.answers, "helpful": e.helpful,
                     "unhelpful": e.unhelpful} for e in report.entries],
        "none_of_these": report.none_of_these,
        "uncovered": [{"count": g.count, "kinds": dict(g.kinds), "examples": list(g.examples),
                       "nearest": g.nearest, "nearest_question": g.nearest_question, "score": g.score,
                       "suggestion": g.suggestion} for g in report.groups],
    }


def stats_text(report: Report, top: int = 3) -> str:
    """A few lines for the Telegram /stats command."""
    kinds = dict(report.kinds)
    shown = ("answer", "clarify", "fallback", "urgent", "chat")
    replies = ", ".join(f"{kinds[k]} {KIND_LABELS[k]}" for k in shown if kinds.get(k))
    up = sum(e.helpful for e in report.entries)
    down = sum(e.unhelpful for e in report.entries)
    lines = [f"{_period(report)}: {report.total} events" + (f" ({replies})" if replies else ""),
             f"Feedback: 👍 {up}, 👎 {down}. \"None of these\": {report.none_of_these}."]
    if report.groups:
        lines.append("Most asked and not covered:")
        lines += [f"- \"{g.examples[0]}\" ({g.count}x; {_short(g.suggestion)})" for g in report.groups[:top]]
        lines.append("Run `portbot report` for the full list.")
    return "\n".join(lines)


def _short(suggestion: str) -> str:
    if suggestion == NEW_ENTRY:
        return "new entry?"
    return suggestion.replace("add as a phrasing of", "phrasing of")


def _period(report: Report) -> str:
    start = report.since or report.first
    if start is None:
        return "nothing recorded" + (f" since {report.since.date().isoformat()}" if report.since else "")
    end = report.last or start
    return f"{start.date().isoformat()} to {end.date().isoformat()}"


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")

