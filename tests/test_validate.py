"""`portbot validate` warns about entries overdue for review and phrasings that now match another entry better."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import Settings
from bot.knowledge import KnowledgeBase, check_knowledge
from bot.validate import conflict_problems, review_problems, validate


def _reviewed(kb: KnowledgeBase) -> dt.date:
    dates = {entry.reviewed for entry in kb.entries}
    return max(dates)


@pytest.mark.parametrize(("days_after", "limit", "warned"), [
    (0, 365, False),
    (365, 365, False),
    (366, 365, True),
    (31, 30, True),
    (-1, 365, True),  # a review date in the future is a typo worth pointing out
])
def test_review_age(kb: KnowledgeBase, days_after: int, limit: int, warned: bool) -> None:
    newest = _reviewed(kb)
    found = review_problems(kb, limit, newest + dt.timedelta(days=days_after))
    newest_entries = [e for e in kb.entries if e.reviewed == newest]
    assert {p.entry for p in found} >= ({e.id for e in newest_entries} if warned else set())
    if not warned:
        assert not any(p.entry in {e.id for e in newest_entries} for p in found)
    for problem in found:
        assert problem.severity == "warning" and problem.file.endswith(".yaml") and problem.line


def test_an_overdue_review_names_file_line_date_and_limit(kb: KnowledgeBase, settings: Settings) -> None:
    today = _reviewed(kb) + dt.timedelta(days=400)
    out = io.StringIO()
    assert validate(kb, [], dataclasses.replace(settings, review_max_age_days=365), Path("knowledge"), out,
                    today=today) == 0
    text = out.getvalue()
    entry = kb.entries[0]
    reviewed = entry.reviewed.isoformat()
    assert f"{entry.file}:{entry.line}: [{entry.id}] warning: was last reviewed on {reviewed}" in text
    assert "limit 365" in text and "update `reviewed:`" in text
    assert text.count("was last reviewed on") == len(kb.entries) and ": OK," in text  # warnings do not fail


def _add_phrasing(kb_copy: Path, entry_id: str, phrasing: str) -> int:
    """Add a phrasing as the first of an entry's phrasings; returns its line number."""
    for path in sorted((kb_copy / "faq").glob("*.yaml")):
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        for number, line in enumerate(lines):
            if line.strip() == f"- id: {entry_id}":
                at = next(i for i in range(number, len(lines)) if lines[i].strip() == "phrasings:") + 1
                lines.insert(at, f"      - {phrasing}\n")
                path.write_text("".join(lines), encoding="utf-8")
                return at + 1
    raise AssertionError(f"no entry {entry_id}")


def test_a_phrasing_that_matches_another_entry_better_is_flagged(kb_copy: Path, settings: Settings,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    line = _add_phrasing(kb_copy, "cost", "what is a pneumothorax")
    kb, _ = check_knowledge(kb_copy)
    assert kb is not None
    found = conflict_problems(kb, settings)
    flagged = [p for p in found if p.entry == "cost"]
    assert len(flagged) == 1 and flagged[0].line == line and flagged[0].severity == "warning"
    assert "'what is a pneumothorax' matches 'pneumothorax' better" in flagged[0].message
    assert main(["validate", str(kb_copy)]) == 0
    out = capsys.readouterr().out
    assert f"daily-life.yaml:{line}: [cost] warning: the phrasing 'what is a pneumothorax'" in out

