"""`portbot validate`: every problem of the knowledge base, worded for the member of staff who edits it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TextIO

from bot.config import Settings
from bot.knowledge import KnowledgeBase
from bot.matching import build_index, phrasing_conflicts
from bot.yamlfile import Problem


def review_problems(kb: KnowledgeBase, max_age_days: int, today: dt.date) -> list[Problem]:
    """Entries whose last review is older than the configured age (or dated in the future)."""
    out = []
    for entry in kb.entries:
        age = (today - entry.reviewed).days
        if age > max_age_days:
            out.append(Problem(entry.file, entry.line, entry.id, f"was last reviewed on {entry.reviewed.isoformat()}, "
                               f"{age} days ago (limit {max_age_days}); check the answer against the guide and "
                               "update `reviewed:`", "warning"))
        elif age < 0:
            out.append(Problem(entry.file, entry.line, entry.id, f"`reviewed:` {entry.reviewed.isoformat()} is in the "
                               "future; use the date of the review", "warning"))
    return out


def conflict_problems(kb: KnowledgeBase, settings: Settings) -> list[Problem]:
    """Phrasings that match another entry better than their own entry."""
    index = build_index(kb)
    out = []
    for own, phrasing, other, own_score, other_score in phrasing_conflicts(index, settings.matching):
        entry = kb.by_id[own]
        line = next((ln for p, ln in zip(entry.phrasings, entry.phrasing_lines, strict=False) if p == phrasing),
                    entry.line)
        out.append(Problem(entry.file, line, own, f"the phrasing '{phrasing}' matches '{other}' better "
                           f"({other_score:.2f}) than its own entry ({own_score:.2f}); reword it or move it",
                           "warning"))
    return out


def validate(kb: KnowledgeBase | None, problems: list[Problem], settings: Settings, path: Path, out: TextIO,
             today: dt.date | None = None) -> int:
    """Print the problems and a summary line; exit code 1 when there is any error."""
    found = list(problems)
    if kb is not None:
        found += review_problems(kb, settings.review_max_age_days, today or dt.date.today())
        found += conflict_problems(kb, settings)
    for problem in found:
        out.write(str(problem) + "\n")
    errors = sum(p.severity == "error" for p in found)
    warnings = len(found) - errors
    if kb is not None:
        phrasings = sum(len(e.phrasings) for e in kb.entries)
        out.write(f"{path}: OK, {len(kb.entries)} entries, {phrasings} phrasings, {warnings} warning(s)\n")
        return 0
    out.write(f"{path}: {errors} error(s), {warnings} warning(s); the bot will not load this knowledge base "
              "until the errors are fixed\n")
    return 1
