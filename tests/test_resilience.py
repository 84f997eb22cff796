"""Faults the bot must ride out without losing a reply: arbitrary input through the whole pipeline, a knowledge
folder damaged while replies are being served, an analytics store that is locked or cannot be written, and a
burst of thousands of messages in bounded memory.

Telegram's own faults (429s, 502s, dropped connections) are in test_telegram_faults.py, and the reload cases
one by one in test_reload.py; these tests combine faults with traffic. None asserts anything about timing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import threading
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from botapi_double import BotApiDouble
from hypothesis import HealthCheck, given
from hypothesis import settings as fuzz_settings
from hypothesis import strategies as st
from telegram_harness import running_bot

from bot.config import Settings, Storage
from bot.events import Event
from bot.reload import KnowledgeSource
from bot.replies import Brain, respond
from bot.store import SqliteRecorder

ROOT = Path(__file__).resolve().parent.parent
KINDS = {"answer", "clarify", "fallback", "urgent", "chat"}
QUESTION = "how many times can a port be used"  # answered by faq/using-your-port.yaml, which says "2,000"
FILE = Path("faq") / "using-your-port.yaml"

# -- arbitrary messages through the whole pipeline ----------------------------------------------------------------
# test_cli.py already sends arbitrary text through respond(); these messages are built from the knowledge base's
# own words, synonyms and typos, glued with the punctuation that splits clauses and asides, so that they reach
# the matcher's deeper paths (clause by clause, denied asides, typo repair, synonyms) rather than stop early.


def _vocabulary(brain: Brain) -> list[str]:
    words = {w for e in brain.kb.entries for text in (e.question, *e.phrasings) for w in text.split()}
    words |= {w for _, variants in brain.kb.synonyms for v in variants for w in v.split()}
    words |= {w for g in brain.kb.gaps for text in g.phrasings for w in text.split()}
    return sorted(words)


@pytest.fixture(scope="module")
def vocabulary(brain: Brain) -> list[str]:
    return _vocabulary(brain)


GLUE = [".", ",", "?", "!", ";", ":", " - ", " but ", "\n", "...", "'", "\u2019", "n't", "no", "not", "never", "ago",
        "went away", "and", "what", "how", "can", "is", "😀", "\u200b", "\x00", "é", "ß", "İ", "ﬁ", " " * 7]


def _messages(vocabulary: list[str]) -> st.SearchStrategy[str]:
    word = st.sampled_from(vocabulary)
    typo = st.tuples(word, st.integers(0, 20), st.sampled_from("aeioustrnx")).map(
        lambda w: w[0][: w[1]] + w[2] + w[0][w[1] + 1 :])
    piece = st.one_of(word, word, typo, st.sampled_from(GLUE), st.text(max_size=4))
    return st.lists(piece, max_size=80).map(" ".join)


FUZZ = fuzz_settings(max_examples=250, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _check(brain: Brain, message: str) -> None:
    reply = respond(brain, message)
    assert reply.kind in KINDS and reply.text.strip()
    assert respond(brain, message) == reply, "the same message gets the same reply"
    payload = reply.as_json()
    assert json.loads(json.dumps(payload, ensure_ascii=False)) == payload
    if reply.kind == "answer":
        assert reply.entry in brain.kb.by_id
    for candidate in reply.candidates:  # a known gap may decide "not covered" but is never offered
        assert candidate.entry in brain.kb.by_id and 0 <= candidate.score <= 1
    if reply.kind == "clarify":
        assert reply.candidates


@FUZZ
@given(data=st.data())
def test_messages_made_of_the_guides_own_words_get_a_sound_reply(brain: Brain, vocabulary: list[str],
                                                                  data: st.DataObject) -> None:
    """Any mix of the guide's words, typos and punctuation gets one well-formed, repeatable reply."""
    _check(brain, data.draw(_messages(vocabulary)))


@FUZZ
@given(data=st.data())
def test_long_stories_get_a_sound_reply(brain: Brain, vocabulary: list[str], data: st.DataObject) -> None:
    """Messages far longer than the matcher reads (it looks at the first 1 200 characters) are fine too."""
    parts = data.draw(st.lists(_messages(vocabulary), min_size=5, max_size=30))
    _check(brain, ". ".join(parts))


def _line(vocabulary: list[str]) -> st.SearchStrategy[str]:
    """One line of standard input: anything but the characters that end a line."""
    return st.one_of(_messages(vocabulary), st.text(max_size=200)).map(
        lambda text: text.replace("\n", " ").replace("\r", " "))


def _ask(lines: bytes, tmp_path: Path) -> subprocess.CompletedProcess[bytes]:
    """`portbot ask --json -` with default settings (no config.yaml, no PORTBOT_ or TELEGRAM_ variables)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTBOT_", "TELEGRAM_"))}
    env["PYTHONIOENCODING"] = "utf-8"
    return subprocess.run([sys.executable, "-m", "bot", "ask", "--json", "-"], input=lines, cwd=tmp_path,
                          env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, timeout=300, check=False)


@fuzz_settings(max_examples=3, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_ask_json_answers_every_line_with_one_json_line(brain: Brain, vocabulary: list[str], tmp_path: Path,
                                                        data: st.DataObject) -> None:
    """Random lines through the command line: exactly one JSON object back per line, the same reply the core
    gives, and no traceback. Bytes that are not UTF-8 are read as replacement characters."""
    texts = data.draw(st.lists(_line(vocabulary), min_size=30, max_size=60))
    raw = data.draw(st.lists(st.binary(max_size=60).map(lambda b: b.replace(b"\n", b" ").replace(b"\r", b" ")),
                             min_size=5, max_size=10))
    lines = [t.encode("utf-8") for t in texts] + raw
    proc = _ask(b"".join(line + b"\n" for line in lines), tmp_path)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert b"Traceback" not in proc.stderr
    out = proc.stdout.decode("utf-8").splitlines()
    assert len(out) == len(lines)
    for line, got in zip(lines, out, strict=True):
        assert json.loads(got) == respond(brain, line.decode("utf-8", errors="replace")).as_json()


# -- the knowledge folder damaged while replies are served ---------------------------------------------------------


@pytest.fixture
def source(kb_copy: Path, settings: Settings) -> KnowledgeSource:
    return KnowledgeSource(dataclasses.replace(settings, knowledge_path=kb_copy))


def _answer(source: KnowledgeSource) -> str:
    reply = respond(source.current(), QUESTION)
    assert reply.kind == "answer" and reply.entry == "number-of-punctures", reply
    return reply.text


def _snapshot(kb: Path) -> dict[Path, bytes]:
    return {p.relative_to(kb): p.read_bytes() for p in kb.rglob("*.yaml")}


def _restore(kb: Path, good: dict[Path, bytes]) -> None:
    if kb.is_symlink() or kb.is_file():
        kb.unlink()
    for relative, data in good.items():
        path = kb / relative
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path)
        if path.parent.is_file():
            path.parent.unlink()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _folder_deleted(kb: Path) -> None:
    shutil.rmtree(kb)


def _folder_emptied(kb: Path) -> None:
    for path in kb.rglob("*.yaml"):
        path.unlink()


def _folder_is_a_file(kb: Path) -> None:
    shutil.rmtree(kb)
    kb.write_text("not a folder any more")


def _faq_is_a_file(kb: Path) -> None:
    shutil.rmtree(kb / "faq")
    (kb / "faq").write_text("entries: []")


def _half_written(kb: Path) -> None:
    path = kb / FILE
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def _half_written_new_file(kb: Path) -> None:
    """A new file being copied in, caught after its first lines."""
    (kb / "faq" / "new.yaml").write_text("entries:\n  - id: brand-new\n    question: Is it\n    phrasings: [")


def _unreadable_file(kb: Path) -> None:
    """Unreadable, as far as root goes: permissions do not bind root, but a folder cannot be read as a file."""
    path = kb / FILE
    path.unlink()
    path.mkdir()


def _dangling_link(kb: Path) -> None:
    path = kb / FILE
    path.unlink()
    path.symlink_to(kb / "faq" / "gone.yaml")


def _safety_emptied(kb: Path) -> None:
    (kb / "safety.yaml").write_text("")


DAMAGE = [_folder_deleted, _folder_emptied, _folder_is_a_file, _faq_is_a_file, _half_written,
          _half_written_new_file, _unreadable_file, _dangling_link, _safety_emptied]


@pytest.mark.parametrize("damage", DAMAGE, ids=lambda d: d.__name__.strip("_"))
def test_each_kind_of_damage_keeps_the_last_good_version(source: KnowledgeSource, kb_copy: Path,
                                                         damage: Callable[[Path], None]) -> None:
    good = _snapshot(kb_copy)
    damage(kb_copy)
    result = source.check()
    assert result.changed and not result.reloaded and result.errors, result.message
    assert "2,000" in _answer(source)
    _restore(kb_copy, good)
    (kb_copy / "faq" / "new.yaml").unlink(missing_ok=True)
    assert source.check().ok
    assert "2,000" in _answer(source)


@pytest.mark.skipif(os.geteuid() == 0, reason="file permissions do not bind root (see the folder-as-file cases)")
def test_files_without_read_permission_keep_the_last_good_version(source: KnowledgeSource, kb_copy: Path) -> None:
    for path in (kb_copy / FILE, kb_copy / "faq"):
        mode = path.stat().st_mode
        path.chmod(0)
        try:
            result = source.check()
            assert result.changed and not result.reloaded and result.errors
            assert "2,000" in _answer(source)
        finally:
            path.chmod(mode)
        assert source.check().ok


def test_damage_while_patients_are_answered(source: KnowledgeSource, kb_copy: Path) -> None:
    """One thread damages and repairs the folder in every way above and looks at it after each step, as the
    watcher does, while another answers without pause: every reply comes whole from a good version."""
    good = _snapshot(kb_copy)
    started, done = threading.Event(), threading.Event()
    failures: list[BaseException] = []
    replies = Counter[str]()

    def answer() -> None:
        try:
            while True:
                text = _answer(source)
                replies["2,000" if "2,000" in text else "3,000" if "3,000" in text else "other"] += 1
                started.set()
                if done.is_set():
                    break
        except BaseException as error:  # reported by the main thread
            failures.append(error)
        finally:
            started.set()

    reader = threading.Thread(target=answer)
    reader.start()
    started.wait()
    try:
        for damage in DAMAGE:
            damage(kb_copy)
            assert not source.check().reloaded
            _restore(kb_copy, good)
            (kb_copy / "faq" / "new.yaml").unlink(missing_ok=True)
            assert source.check().ok
        path = kb_copy / FILE
        path.write_text(path.read_text(encoding="utf-8").replace("2,000", "3,000"), encoding="utf-8")
        assert source.check().reloaded
    finally:
        done.set()
        reader.join()
    assert not failures, failures
    assert replies["other"] == 0 and replies["2,000"] > 0
    assert "3,000" in _answer(source)


# -- an analytics store that is locked or cannot be written --------------------------------------------------------


def _expected(brain: Brain, message: str) -> str:
    """What the patient reads in Telegram: an answer is headed by its question."""
    reply = respond(brain, message)
    if reply.kind == "answer" and reply.entry:
        return f"{brain.kb.by_id[reply.entry].question}\n\n{reply.text}"
    return reply.text


def _traffic(brain: Brain) -> list[str]:
    return [e.question for e in brain.kb.entries[:6]] + ["hello", "recipe for banana bread", "can i swim?"]


async def _serve_and_check(api: BotApiDouble, brain: Brain, store: SqliteRecorder, users: range) -> None:
    messages = _traffic(brain)
    async with running_bot(api, brain, recorder=store):
        for user in users:
            api.push_message(user, messages[user % len(messages)])
        await api.wait_for(lambda: len(api.sent) >= len(users), timeout=120, what="a reply to every message")
        await api.settle()
    for user in users:
        assert [s.plain for s in api.sent_to(user)] == [_expected(brain, messages[user % len(messages)])]


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    return Storage(path=tmp_path / "data" / "portbot.sqlite3", hash_key="test key")


async def test_a_store_locked_by_another_connection_costs_no_reply(api: BotApiDouble, brain: Brain,
                                                                   storage: Storage) -> None:
    """Another process holds the store's write lock for the whole burst: every patient gets the right reply,
    the events are dropped (and counted), and recording resumes once the lock is gone."""
    with SqliteRecorder(storage) as store:
        store.record(Event("chat", "1"))  # the store exists, with its schema
        other = sqlite3.connect(storage.path, isolation_level=None)
        try:
            other.execute("BEGIN EXCLUSIVE")
            await _serve_and_check(api, brain, store, range(3000, 3020))
            other.execute("COMMIT")
        finally:
            other.close()
        assert store.dropped == 20
        store.record(Event("chat", "2"))
        assert len(store.rows()) == 2


async def test_a_store_that_cannot_be_written_costs_no_reply(api: BotApiDouble, brain: Brain,
                                                             storage: Storage) -> None:
    """The store turns read-only in the middle of the traffic (as a full disk or a remounted volume would;
    simulated per connection, since file modes do not bind root): replies go on, events are dropped."""
    with SqliteRecorder(storage) as store:
        store.record(Event("chat", "1"))
        assert store._db is not None
        store._db.execute("PRAGMA query_only = ON")
        await _serve_and_check(api, brain, store, range(3100, 3110))
        assert store.dropped >= 1


async def test_a_store_path_that_is_a_folder_costs_no_reply(api: BotApiDouble, brain: Brain,
                                                            storage: Storage) -> None:
    """The store cannot even be created (a folder is in the way): the bot answers as if it had none."""
    storage.path.mkdir(parents=True)
    with SqliteRecorder(storage) as store:
        await _serve_and_check(api, brain, store, range(3200, 3210))
        assert store.dropped == 10


# -- a burst of messages in bounded memory --------------------------------------------------------------------------


class CountingRecorder:
    """Counts events per user and kind instead of keeping them, so memory measures the bot, not the test."""

    def __init__(self) -> None:
        self.per_user: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()

    def record(self, event: Event) -> None:
        self.per_user[event.user] += 1
        self.kinds[event.kind] += 1

    def forget(self, user: str) -> int:
        return self.per_user.pop(user, 0)


def _burst(brain: Brain, users: int, per_user: int) -> Iterator[tuple[str, str]]:
    """(user, message): the evaluation sets' patient messages, each user's with typos of their own."""
    pool: list[str] = []
    for name in ("patients.yaml", "holdout.yaml", "safety.yaml"):
        pool += [c["q"] for c in yaml.safe_load((ROOT / "tests" / "eval" / name).read_text(encoding="utf-8"))]
    rng = random.Random(2026)
    for round_ in range(per_user):
        for user in range(users):
            text = list(rng.choice(pool))
            for _ in range(rng.randrange(3)):
                text[rng.randrange(len(text))] = rng.choice("aeiostrnhx")
            yield f"{9000 + user}", "".join(text) + f" {round_}" * (user % 2)


def test_a_burst_of_2000_messages_from_500_users(brain: Brain) -> None:
    """Every message is answered and recorded once, and memory stays bounded: the peak of what is allocated
    while the burst runs (caches of folded words and typo repairs included) stays far below 50 MB."""
    recorder = CountingRecorder()
    respond(brain, "warm up: the English word list is read on the first message")
    kinds: Counter[str] = Counter()
    tracemalloc.start()
    try:
        for user, message in _burst(brain, users=500, per_user=4):
            reply = respond(brain, message)
            assert reply.kind in KINDS and reply.text
            recorder.record(Event(reply.kind, user, reply.entry, reply.score, message))
            kinds[reply.kind] += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sum(recorder.per_user.values()) == 2000 and len(recorder.per_user) == 500
    assert set(recorder.per_user.values()) == {4}
    assert kinds["answer"] >= 500 and kinds["urgent"] and kinds["fallback"], kinds  # the matcher was exercised
    assert peak < 50 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
