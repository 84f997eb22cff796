"""Knowledge edits go live without a restart, and a broken, half-written or missing folder never reaches patients:
the last good version keeps answering and the problem is reported with file and line."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot import prepared
from bot.config import Settings
from bot.console import run_console
from bot.knowledge import KnowledgeError
from bot.reload import KnowledgeSource, ReloadResult, watch
from bot.replies import respond

QUESTION = "how many times can a port be used"
FILE = Path("faq") / "using-your-port.yaml"


@pytest.fixture
def source(kb_copy: Path, settings: Settings) -> KnowledgeSource:
    return KnowledgeSource(dataclasses.replace(settings, knowledge_path=kb_copy))


def _answer(source: KnowledgeSource) -> str:
    reply = respond(source.current(), QUESTION)
    assert reply.kind == "answer" and reply.entry == "number-of-punctures"
    return reply.text


def _edit_number(kb: Path, new: str = "3,000", old: str = "2,000") -> None:
    path = kb / FILE
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


BROKEN = "entries:\n  - id: oops\n\tquestion: a tab where spaces belong\n"


def test_an_edited_answer_is_served_after_check(source: KnowledgeSource, kb_copy: Path) -> None:
    assert "2,000" in _answer(source)
    _edit_number(kb_copy)
    result = source.check()
    assert result.changed and result.reloaded and result.ok and result.entries == len(source.current().kb.entries)
    assert "3,000" in _answer(source)


def test_nothing_changed_is_cheap_and_keeps_the_same_brain(source: KnowledgeSource) -> None:
    brain = source.current()
    result = source.check()
    assert not result.changed and not result.reloaded and source.current() is brain


def test_a_broken_file_keeps_the_old_answers_and_names_file_and_line(
        source: KnowledgeSource, kb_copy: Path, caplog: pytest.LogCaptureFixture) -> None:
    seen: list[ReloadResult] = []
    source.on_error = seen.append
    caplog.set_level(logging.ERROR, logger="portbot.reload")
    (kb_copy / FILE).write_text(BROKEN, encoding="utf-8")
    result = source.check()
    assert result.changed and not result.reloaded and not result.ok
    assert "using-your-port.yaml:3" in result.message and "YAML syntax error" in result.message
    assert any("using-your-port.yaml:3" in str(p) for p in result.errors)
    assert seen == [result]
    assert any("using-your-port.yaml:3" in r.getMessage() for r in caplog.records)
    assert "2,000" in _answer(source)
    assert not source.check().changed  # reported once, not at every look


def _delete(kb: Path) -> None:
    shutil.rmtree(kb)


def _empty(kb: Path) -> None:
    for path in kb.rglob("*.yaml"):
        path.unlink()


def _truncate(kb: Path) -> None:
    """A file caught half-written: cut off in the middle of an entry."""
    path = kb / FILE
    text = path.read_text(encoding="utf-8")
    path.write_text(text[: len(text) // 2], encoding="utf-8")


def _unreadable(kb: Path) -> None:
    """A file that cannot be read (permissions do not bind root, so make it a folder)."""
    path = kb / FILE
    path.unlink()
    path.mkdir()


def _not_utf8(kb: Path) -> None:
    (kb / FILE).write_bytes(b"entries:\n  - id: \xff\xfe broken\n")


def _emptied_file(kb: Path) -> None:
    (kb / FILE).write_text("", encoding="utf-8")


@pytest.mark.parametrize("damage", [_delete, _empty, _truncate, _unreadable, _not_utf8, _emptied_file])
def test_a_damaged_folder_keeps_the_old_answers_until_it_is_fixed(source: KnowledgeSource, kb_copy: Path,
                                                                   damage: object) -> None:
    good = {p.relative_to(kb_copy): p.read_bytes() for p in kb_copy.rglob("*.yaml")}
    damage(kb_copy)  # type: ignore[operator]
    result = source.check()
    assert result.changed and not result.reloaded and result.errors
    assert "2,000" in _answer(source)
    # Recovery: the folder is put back, with the edit staff meant to make.
    if (kb_copy / FILE).is_dir():
        (kb_copy / FILE).rmdir()
    for relative, data in good.items():
        (kb_copy / relative).parent.mkdir(parents=True, exist_ok=True)
        (kb_copy / relative).write_bytes(data)
    _edit_number(kb_copy)
    result = source.check()
    assert result.reloaded and result.ok, result.message
    assert "3,000" in _answer(source)


def test_a_failed_load_is_retried_on_the_next_change(source: KnowledgeSource, kb_copy: Path) -> None:
    (kb_copy / FILE).write_text(BROKEN, encoding="utf-8")
    assert not source.check().ok
    (kb_copy / FILE).write_text("entries: [\n", encoding="utf-8")
    second = source.check()
    assert second.changed and not second.ok and "using-your-port.yaml" in second.message


def test_changing_back_to_the_served_version_is_picked_up(source: KnowledgeSource, kb_copy: Path) -> None:
    """Undoing a broken edit exactly (same bytes and time, as a restore from backup does) needs no load."""
    path = kb_copy / FILE
    original, info = path.read_bytes(), path.stat()
    brain = source.current()
    path.write_text(BROKEN, encoding="utf-8")
    assert not source.check().ok
    path.write_bytes(original)
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    result = source.check()
    assert result.changed and result.ok and not result.reloaded and source.current() is brain
    assert "2,000" in _answer(source)


def test_a_file_written_while_it_is_read_is_read_again(source: KnowledgeSource, kb_copy: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever was read while the file changed may be half old, half new: it is not served, and looked at again."""
    real = prepared.check_knowledge
    writes = iter([lambda: _edit_number(kb_copy, "4,000", old="3,000")])

    def check_then_write(path: Path) -> object:
        found = real(path)
        for write in writes:
            write()
        return found

    monkeypatch.setattr(prepared, "check_knowledge", check_then_write)
    _edit_number(kb_copy, "3,000")
    first = source.check()
    assert first.changed and not first.reloaded and "2,000" in _answer(source)
    second = source.check()
    assert second.reloaded and "4,000" in _answer(source)


def test_a_writer_racing_the_checks_never_breaks_anything(source: KnowledgeSource, kb_copy: Path) -> None:
    """A file rewritten in small pieces while checks run: every reply comes from a complete version."""
    path = kb_copy / FILE
    final = path.read_text(encoding="utf-8").replace("2,000", "5,000")
    done = threading.Event()

    def writer() -> None:
        for _ in range(20):
            with path.open("w", encoding="utf-8") as out:
                for start in range(0, len(final), 512):
                    out.write(final[start:start + 512])
                    out.flush()
                    time.sleep(0.005)
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    looks = 0
    while not done.is_set():
        source.check()
        looks += 1
        text = _answer(source)
        assert "2,000" in text or "5,000" in text
    thread.join()
    assert looks > 1
    source.check()
    assert "5,000" in _answer(source)


def test_reload_is_forced(source: KnowledgeSource) -> None:
    brain = source.current()
    result = source.reload()
    assert result.reloaded and result.ok and source.current() is not brain
    assert "reloaded" in result.message


def test_a_forced_reload_of_a_broken_folder_tells_the_admin(source: KnowledgeSource, kb_copy: Path) -> None:
    (kb_copy / FILE).write_text(BROKEN, encoding="utf-8")
    result = source.reload()
    assert not result.reloaded and result.message.startswith("kept the previous version")
    assert "using-your-port.yaml:3" in result.message


def test_a_broken_folder_at_start_is_refused(kb_copy: Path, settings: Settings) -> None:
    (kb_copy / FILE).write_text(BROKEN, encoding="utf-8")
    with pytest.raises(KnowledgeError, match=r"using-your-port\.yaml:3"):
        KnowledgeSource(dataclasses.replace(settings, knowledge_path=kb_copy))


def test_replies_stay_right_while_a_reload_runs_in_another_thread(source: KnowledgeSource) -> None:
    """watch() loads in a worker thread while the event loop answers: the two must not share mutable state."""
    results: list[ReloadResult] = []
    thread = threading.Thread(target=lambda: results.extend(source.reload() for _ in range(3)))
    thread.start()
    while thread.is_alive():
        assert "2,000" in _answer(source)
    thread.join()
    assert [r.message for r in results if not r.reloaded] == []


async def test_watch_picks_up_a_change_within_seconds(source: KnowledgeSource, kb_copy: Path) -> None:
    task = asyncio.create_task(watch(source, interval=0.05))
    try:
        await asyncio.sleep(0.1)
        _edit_number(kb_copy)
        for _ in range(300):  # a generous bound (15 s); no timing is asserted beyond it
            if "3,000" in respond(source.current(), QUESTION).text:
                break
            await asyncio.sleep(0.05)
        assert "3,000" in _answer(source)
        (kb_copy / FILE).write_text(BROKEN, encoding="utf-8")
        await asyncio.sleep(0.3)
        assert "3,000" in _answer(source)  # the watcher survives a broken file and keeps the last good version
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_the_console_sees_edits_between_messages(source: KnowledgeSource, kb_copy: Path) -> None:
    def lines() -> Iterator[str]:
        yield QUESTION + "\n"
        _edit_number(kb_copy)
        yield QUESTION + "\n"

    out = io.StringIO()
    run_console(source.fresh, lines(), out, interactive=False)
    first, second = out.getvalue().split("2,000", 1)
    assert "3,000" in second and "3,000" not in first
