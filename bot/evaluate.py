"""Run question sets (staff regression checks, evaluation sets) through the pipeline and tabulate the results."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bot.replies import Brain, Reply, respond
from bot.yamlfile import Node, Problem, Seq, YamlProblem, describe, read_yaml

EXPECTATIONS = ("answer", "fallback", "clarify", "urgent", "chat")
CASE_KEYS = ("q", "expect", "entry", "facts")


@dataclass(frozen=True, slots=True)
class Case:
    """One message and what the bot must do with it."""

    q: str
    expect: str
    entry: str | None = None
    facts: tuple[tuple[str, ...], ...] = ()
    line: int = 0


@dataclass(frozen=True, slots=True)
class Result:
    case: Case
    reply: Reply
    ok: bool
    wrong: bool  # answered with an FAQ entry where it should not have, or with the wrong entry


@dataclass(frozen=True, slots=True)
class Summary:
    """Counts per expectation, and the figures the quality bar is stated in."""

    passed: dict[str, int]
    total: dict[str, int]
    wrong: int
    clarified: int

    def rate(self, expect: str) -> float:
        return self.passed.get(expect, 0) / self.total[expect] if self.total.get(expect) else 1.0

    @property
    def wrong_rate(self) -> float:
        judged = self.total.get("answer", 0) + self.total.get("fallback", 0)
        return self.wrong / judged if judged else 0.0

    def line(self) -> str:
        parts = [f"{k} {self.passed.get(k, 0)}/{n} ({100 * self.rate(k):.1f}%)" for k, n in self.total.items()]
        wrong = f"; wrong answers {self.wrong} ({100 * self.wrong_rate:.1f}%), clarify {self.clarified}"
        return ", ".join(parts) + wrong


def load_cases(path: Path) -> list[Case]:
    """The cases in a YAML list file; YamlProblem naming the line of the first bad case."""
    shown = str(path)
    doc = read_yaml(path, shown)
    if not isinstance(doc, Seq):
        raise YamlProblem(Problem(shown, 1, None, "must be a list of cases like "
                                  "`- {q: \"can I swim?\", expect: answer, entry: everyday-activities}`"))
    cases = []
    for item, line in zip(doc, doc.lines, strict=True):
        def bad(message: str, at: int = line) -> YamlProblem:
            return YamlProblem(Problem(shown, at, None, message))

        if not isinstance(item, Node):
            raise bad(f"each case must be a block with q and expect, not {describe(item)}")
        unknown = [k for k in item if k not in CASE_KEYS]
        if unknown:
            raise bad(f"unknown key '{unknown[0]}'; a case has " + ", ".join(CASE_KEYS))
        q, expect = item.get("q"), item.get("expect")
        if not isinstance(q, str):
            raise bad(f"`q:` must be the message as text, not {describe(q)}")
        if expect not in EXPECTATIONS:
            raise bad(f"`expect:` must be one of {', '.join(EXPECTATIONS)}, not '{expect}'")
        entry = item.get("entry")
        if entry is not None and not isinstance(entry, str):
            raise bad(f"`entry:` must be an entry id, not {describe(entry)}")
        facts = item.get("facts") or []
        if not isinstance(facts, list) or not all(isinstance(g, list) and g for g in facts):
            raise bad("`facts:` must be a list of lists of words, like [[swim], [exercise, sport]]")
        cases.append(Case(q, expect, entry, tuple(tuple(str(w) for w in g) for g in facts), line))
    return cases


def judge(case: Case, reply: Reply) -> Result:
    if case.expect == "answer":
        # With facts, an answer is right when it states them, whichever entry gave it (as the external scorer
        # judges); without facts, it must come from the named entry.
        text = reply.text.casefold()
        if case.facts:
            right = all(any(word.casefold() in text for word in group) for group in case.facts)
        else:
            right = case.entry is None or reply.entry == case.entry
        ok = reply.kind == "answer" and right
        return Result(case, reply, ok, reply.kind == "answer" and not ok)
    if case.expect == "clarify":
        ok = reply.kind == "clarify" and (case.entry is None or any(c.entry == case.entry for c in reply.candidates))
        return Result(case, reply, ok, reply.kind == "answer" and reply.entry != case.entry)
    return Result(case, reply, reply.kind == case.expect, case.expect == "fallback" and reply.kind == "answer")


def run_cases(brain: Brain, cases: Iterable[Case]) -> list[Result]:
    return [judge(case, respond(brain, case.q)) for case in cases]


def summarize(results: list[Result]) -> Summary:
    passed: dict[str, int] = {}
    total: dict[str, int] = {}
    for result in results:
        expect = result.case.expect
        total[expect] = total.get(expect, 0) + 1
        passed[expect] = passed.get(expect, 0) + result.ok
    clarified = sum(r.case.expect == "answer" and r.reply.kind == "clarify" for r in results)
    return Summary(passed, total, sum(r.wrong for r in results), clarified)


def table(results: list[Result], failures_only: bool = False) -> str:
    """A plain-text table: pass/fail, the message, what was expected and what the bot did."""
    rows = [("", "message", "expected", "got", "score")]
    for result in results:
        if failures_only and result.ok:
            continue
        case, reply = result.case, result.reply
        expected = case.expect + (f" {case.entry}" if case.entry else "")
        got = reply.kind + (f" {reply.entry}" if reply.entry else "")
        if reply.kind == "clarify":
            got += " (" + ", ".join(c.entry for c in reply.candidates) + ")"
        score = "" if reply.score is None else f"{reply.score:.2f}"
        message = case.q if len(case.q) <= 60 else case.q[:57] + "..."
        rows.append(("ok" if result.ok else "FAIL", message, expected, got, score))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths, strict=True)) + "  " + row[4]
                     for row in rows)
