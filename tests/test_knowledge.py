"""The shipped knowledge base is complete and valid, and every broken edit is reported with file, line and entry."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from bot.config import Settings
from bot.knowledge import MIN_PHRASINGS, KnowledgeBase, KnowledgeError, check_knowledge, load_knowledge
from bot.validate import validate

PLAN = Path(__file__).resolve().parent.parent / "docs" / "entries-plan.md"
SOURCE = Path(__file__).resolve().parent.parent.parent / "shared" / "source" / "venous-access-ports.md"
SECTIONS = ("What is a venous access port?", "How does the procedure work?", "Why perform it?", "What are the risks?")


def _plan() -> list[tuple[str, list[list[str]]]]:
    """(entry id, key-term groups) from the table in docs/entries-plan.md."""
    rows = []
    for line in PLAN.read_text().splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 5 and re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", cells[1]) and cells[1] != "id":
            groups = [[w.strip().casefold() for w in g.split(",")] for g in re.findall(r"\[([^\]]+)\]", cells[4])]
            rows.append((cells[1], groups))
    return rows


def test_every_planned_fact_is_reachable(kb: KnowledgeBase) -> None:
    """Each fact of the source has its entry, and the answer states it in the words patients may know."""
    plan = _plan()
    assert len(plan) >= 30
    for entry_id, groups in plan:
        entry = kb.entry(entry_id)
        assert entry is not None, f"no entry {entry_id}"
        answer = entry.answer.casefold()
        for group in groups:
            assert any(term in answer for term in group), f"{entry_id}: answer lacks any of {group}"


def test_entries_are_complete(kb: KnowledgeBase) -> None:
    """Every entry has enough phrasings, a source section of the guide and a review date."""
    for entry in kb.entries:
        assert len(entry.phrasings) >= MIN_PHRASINGS, entry.id
        assert entry.source in SECTIONS, entry.id
        assert entry.category in kb.categories()


def test_answers_do_not_copy_the_source(kb: KnowledgeBase) -> None:
    """Answers are in our own words: no run of eight words is lifted from the guide."""
    source = re.sub(r"[^a-z0-9 ]+", " ", SOURCE.read_text().casefold()).split()
    grams = {tuple(source[i : i + 8]) for i in range(len(source) - 7)}
    for entry in kb.entries:
        words = re.sub(r"[^a-z0-9 ]+", " ", entry.answer.casefold()).split()
        copied = [" ".join(words[i : i + 8]) for i in range(len(words) - 7) if tuple(words[i : i + 8]) in grams]
        assert not copied, f"{entry.id} copies the source: {copied[0]}"


def test_shipped_knowledge_validates_cleanly(kb: KnowledgeBase, settings: Settings,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """`portbot validate` passes on the shipped folder with no warnings at all."""
    kb2, problems = check_knowledge(kb.root)
    assert validate(kb2, problems, settings, Path(kb.root), sys.stdout) == 0
    out = capsys.readouterr().out
    assert "0 warning(s)" in out, out


def _break(folder: Path, relative: str, old: str, new: str, count: int = 1) -> None:
    path = folder / relative
    text = path.read_text()
    assert old in text, f"{old!r} not in {relative}"
    path.write_text(text.replace(old, new, count))


BROKEN = [
    # (file, text to replace, replacement, words the message must contain)
    ("faq/about.yaml", "  - id: what-is-a-port", "  - id: port-weight", ["already used", "port-weight"]),
    ("faq/about.yaml", "    category:", "    categroy:", ["unknown key 'categroy'", "did you mean 'category'"]),
    ("faq/about.yaml", "    reviewed: 2026-11-28", "    reviewed: last week", ["reviewed", "2026-11-28"]),
    ("faq/about.yaml", "    question: What is a venous access port?", "    question: 8:30", ["must be text", "8:30"]),
    ("faq/about.yaml", "    question: What is a venous access port?", "    question: What is\tit?\n\tx: y",
     ["YAML syntax error"]),
    ("faq/about.yaml", "    category: About ports", "    category: About ports\n    category: Risks",
     ["appears twice"]),
    ("faq/risks.yaml", "    related: [", "    related: [no-such-entry, ", ["no-such-entry", "no entry's id"]),
    ("texts.yaml", "Please ask {care_team_name}", "Please ask {care_team_nmae}", ["placeholder", "care_team_nmae"]),
]


@pytest.mark.parametrize(("file", "old", "new", "words"), BROKEN)
def test_broken_edits_are_reported_with_file_and_line(kb_copy: Path, file: str, old: str, new: str,
                                                      words: list[str]) -> None:
    """A broken edit is an error naming the file and its line, and saying what is wrong."""
    _break(kb_copy, file, old, new)
    kb, problems = check_knowledge(kb_copy)
    errors = [p for p in problems if p.severity == "error"]
    assert kb is None and errors
    text = str(errors[0])
    assert file in text and re.search(r":\d+:", text), text
    for word in words:
        assert word in text, text
    with pytest.raises(KnowledgeError):
        load_knowledge(kb_copy)


def test_empty_answer_names_the_entry(kb_copy: Path) -> None:
    path = kb_copy / "faq" / "about.yaml"
    text = path.read_text()
    start = text.index("    answer:", text.index("id: what-is-a-port"))
    end = text.index("    category:", start)
    path.write_text(text[:start] + "    answer: ''\n" + text[end:])
    _, problems = check_knowledge(kb_copy)
    assert any(p.entry == "what-is-a-port" and "answer" in p.message and "empty" in p.message for p in problems)


def test_missing_folder_and_missing_texts(tmp_path: Path, kb_copy: Path) -> None:
    _, problems = check_knowledge(tmp_path / "nowhere")
    assert "not a folder" in str(problems[0])
    (kb_copy / "texts.yaml").unlink()
    kb, problems = check_knowledge(kb_copy)
    assert kb is None and any("texts.yaml" in str(p) and "missing" in str(p) for p in problems)


def test_few_phrasings_is_a_warning_not_an_error(kb_copy: Path) -> None:
    """A new entry with few phrasings still loads, so staff can add it and grow it later."""
    (kb_copy / "faq" / "new.yaml").write_text(
        "entries:\n  - id: brand-new\n    question: A new question?\n    phrasings: [one way to ask]\n"
        "    answer: A new answer.\n    category: About ports\n    source: Why perform it?\n    reviewed: 2026-11-01\n")
    kb, problems = check_knowledge(kb_copy)
    assert kb is not None and kb.entry("brand-new") is not None
    assert any(p.severity == "warning" and p.entry == "brand-new" and "phrasings" in p.message for p in problems)
