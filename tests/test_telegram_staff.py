"""Staff tools on Telegram, end to end through the real PTB Application and the Bot API double on 127.0.0.1:
live reload of the knowledge folder, the admin commands /reload and /stats, and the patient's /privacy and
/forget over the real SQLite store, including a store that cannot be written."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from botapi_double import BotApiDouble, Sent
from telegram_harness import message_of_kind, running_bot, shipped_brain

from bot import store as store_module
from bot.config import BUNDLED_KNOWLEDGE, Settings, Storage
from bot.events import Event, MemoryRecorder
from bot.knowledge import load_knowledge
from bot.reload import KnowledgeSource, ReloadResult, watch
from bot.replies import Brain, build_brain, respond
from bot.store import Row, SqliteRecorder
from bot.telegram_app import ADMIN_COMMANDS, COMMANDS

ADMIN = 424242
PATIENT = 515151
OTHER = 616161
QUESTION = "how many times can a port be used"  # answered by number-of-punctures, which says "2,000"
FILE = Path("faq") / "using-your-port.yaml"
BROKEN = "entries:\n  - id: oops\n\tquestion: a tab where spaces belong\n"
KEY = "staff test key"
# Questions the guide does not cover (checked below), one per patient, so each one's text can be traced.
UNCOVERED = ("my goldfish likes jazz music", "recipe for banana bread", "qwertyuiop zxcvbnm")


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    return Storage(path=tmp_path / "data" / "portbot.sqlite3", hash_key=KEY)


async def ask(api: BotApiDouble, chat: int, text: str, **kwargs: object) -> Sent:
    """Send one message and return the one reply it gets."""
    before = len(api.sent_to(chat))
    api.push_message(chat, text, **kwargs)  # type: ignore[arg-type]
    replies = await api.replies(chat, before + 1)
    await api.settle(quiet=0.05)
    assert len(api.sent_to(chat)) == before + 1, "exactly one reply per message"
    return replies[-1]


def user_hash(user: int) -> str:
    return hmac.new(KEY.encode(), str(user).encode(), hashlib.sha256).hexdigest()


def uncovered(brain: Brain) -> tuple[str, ...]:
    assert all(respond(brain, text).kind == "fallback" for text in UNCOVERED)
    return UNCOVERED


# -- live reload ---------------------------------------------------------------------------------------------


async def test_edits_go_live_and_a_broken_file_keeps_the_old_answers(
    api: BotApiDouble, kb_copy: Path, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """With the watcher looking every 0.2 s, a number replaced in an answer is in the next reply within 5 s;
    invalid YAML written meanwhile keeps the last good answers, and the failure is logged with file and line;
    /reload by an admin names the broken file and line, and after the fix reports the entries reloaded."""
    caplog.set_level(logging.INFO)
    failed: list[ReloadResult] = []
    source = KnowledgeSource(dataclasses.replace(settings, knowledge_path=kb_copy), on_error=failed.append)

    async def watcher() -> None:
        await watch(source, 0.2)

    async with running_bot(  # no flood limit: the patient asks again and again until the edit is live
        api,
        brain_source=source.current,
        background=[watcher],
        reload=source.reload,
        admins=(ADMIN,),
        flood_limit=0,
    ):
        assert "2,000" in (await ask(api, PATIENT, QUESTION)).plain
        path = kb_copy / FILE
        path.write_text(path.read_text(encoding="utf-8").replace("2,000", "3,000"), encoding="utf-8")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5.0
        while "3,000" not in (reply := await ask(api, PATIENT, QUESTION)).plain:
            assert "2,000" in reply.plain
            assert loop.time() < deadline, "the edited answer was not live within 5 seconds"
            await asyncio.sleep(0.1)

        (kb_copy / "faq" / "zz-broken.yaml").write_text(BROKEN, encoding="utf-8")
        await api.wait_for(lambda: failed, timeout=5, what="the watcher to see the broken file")
        assert "3,000" in (await ask(api, PATIENT, QUESTION)).plain

        brain = source.current()
        failure = await ask(api, ADMIN, "/reload")
        assert failure.plain.startswith(brain.texts["reload_failed"])
        assert "kept the previous version" in failure.plain and "zz-broken.yaml:3" in failure.plain
        assert source.current() is brain
        assert "3,000" in (await ask(api, PATIENT, QUESTION)).plain

        (kb_copy / "faq" / "zz-broken.yaml").unlink()
        success = await ask(api, ADMIN, "/reload")
        assert success.plain == f"{brain.texts['reloaded']}\nreloaded {len(brain.kb.entries)} entries"
        assert "3,000" in (await ask(api, PATIENT, QUESTION)).plain

    logged = [r for r in caplog.records if r.name == "portbot.reload" and r.levelno >= logging.ERROR]
    assert any("zz-broken.yaml:3" in r.getMessage() for r in logged), "a failure is logged with file and line"
    assert all(QUESTION not in r.getMessage() for r in caplog.records), "no patient's message in the log"


# -- admin commands ------------------------------------------------------------------------------------------


class WatchedRecorder(MemoryRecorder):
    """A MemoryRecorder that can be read like the SQLite store and counts the reads."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def rows(self, since: object = None) -> list[Row]:
        self.reads += 1
        return []


async def test_only_admins_in_a_private_chat_may_reload_or_see_stats(
    api: BotApiDouble, caplog: pytest.LogCaptureFixture
) -> None:
    """Anyone else gets "not allowed", nothing is reloaded or read, the attempt is logged without the user id,
    and the public command menu offers no staff command (the admins' own menu does)."""
    caplog.set_level(logging.INFO)
    brain = shipped_brain()
    reloads: list[int] = []
    recorder = WatchedRecorder()

    def reload() -> ReloadResult:
        reloads.append(1)
        return ReloadResult(True, True, entries=len(brain.kb.entries), message="reloaded")

    async with running_bot(api, brain, recorder=recorder, reload=reload, admins=(ADMIN,)):
        for command in ("/reload", "/stats"):
            reply = await ask(api, PATIENT, command)
            assert reply.plain == brain.texts["not_allowed"]
        # An admin in a group is refused too: /stats may quote patients' questions.
        api.push_message(-100, "/stats", user_id=ADMIN, chat_type="group")
        (group_reply,) = await api.replies(-100, 1)
        assert group_reply.plain == brain.texts["not_allowed"]
        assert "not allowed" not in (await ask(api, ADMIN, "/reload")).plain.casefold()
    assert reloads == [1], "only the admin's /reload in a private chat ran"
    assert recorder.reads == 0 and recorder.events == []
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 3
    assert sum("non-admin" in text for text in refusals) == 2
    for record in caplog.records:
        assert str(PATIENT) not in record.getMessage() and str(ADMIN) not in record.getMessage()
    public = [c["command"] for c in api.commands]
    assert public == [name for name, _ in COMMANDS] and "forget" in public
    assert not {"reload", "stats"} & set(public)
    assert [c["command"] for c in api.chat_commands[ADMIN]] == public + [name for name, _ in ADMIN_COMMANDS]


async def test_stats_lists_counts_for_an_admin(api: BotApiDouble, storage: Storage) -> None:
    """/stats counts the week's replies by kind and lists the uncovered questions, as plain text."""
    brain = shipped_brain()
    question = message_of_kind(brain, "answer")
    gap = uncovered(brain)[0]
    with SqliteRecorder(storage) as recorder:
        async with running_bot(api, brain, recorder=recorder, admins=(ADMIN,)):
            for chat, text in ((PATIENT, question), (OTHER, question), (PATIENT, gap)):
                await ask(api, chat, text)
            stats = await ask(api, ADMIN, "/stats")
            month = await ask(api, ADMIN, "/stats 30")
            wrong = await ask(api, ADMIN, "/stats lots")
    assert "3 events (2 answered, 1 not covered)" in stats.plain
    assert "👍 0, 👎 0" in stats.plain
    assert f'"{gap}"' in stats.plain
    assert "<" not in stats.text, "plain text, escaped"
    assert "3 events" in month.plain
    assert wrong.plain.startswith("Use /stats")


# -- patients: /privacy and /forget --------------------------------------------------------------------------


async def test_privacy_says_what_is_kept_and_for_how_long(api: BotApiDouble, settings: Settings) -> None:
    """/privacy names what is kept, that urgent and answered messages' words are not, the hashed id, the
    retention from the config, and /forget; with the store off it says nothing is kept."""
    kept = dataclasses.replace(settings, storage=dataclasses.replace(settings.storage, retention_days=30))
    brain = build_brain(load_knowledge(BUNDLED_KNOWLEDGE), kept)
    async with running_bot(api, brain):
        text = (await ask(api, PATIENT, "/privacy")).plain
    assert "30 days" in text and "90" not in text
    for needle in ("kind of reply", "which answer", "how sure", "the time", "👍", "None of these",
                   "did not cover", "not sure", "never keep the words", "worrying symptom", "user id",
                   "coded form", "/forget"):
        assert needle in text, needle

    off = dataclasses.replace(Storage(), enabled=False)
    async with running_bot(api, brain, storage=off):
        text = (await ask(api, OTHER, "/privacy")).plain
    assert text == brain.texts["privacy_off"]


async def test_forget_leaves_no_row_of_that_user_in_the_store(api: BotApiDouble, storage: Storage) -> None:
    """After /forget, the SQLite file holds no row of that patient (not even the words of their uncovered
    question), other patients' rows stay, and the confirmation is sent only then."""
    brain = shipped_brain()
    mine, theirs = uncovered(brain)[:2]
    with SqliteRecorder(storage) as recorder:
        async with running_bot(api, brain, recorder=recorder):
            await ask(api, PATIENT, message_of_kind(brain, "answer"))
            await ask(api, PATIENT, mine)
            await ask(api, OTHER, theirs)
            assert recorder.dropped == 0
            db = sqlite3.connect(storage.path)
            try:
                count = "SELECT count(*) FROM events WHERE user_hash = ?"
                assert db.execute(count, (user_hash(PATIENT),)).fetchone()[0] == 2
                reply = await ask(api, PATIENT, "/forget")
                assert db.execute(count, (user_hash(PATIENT),)).fetchone()[0] == 0
                assert db.execute(count, (user_hash(OTHER),)).fetchone()[0] == 1
                assert db.execute("SELECT message FROM events").fetchall() == [(theirs,)]
            finally:
                db.close()
    assert reply.plain == brain.texts["forgotten"]
    on_disk = b"".join(
        p.read_bytes() for p in storage.path.parent.iterdir() if p.name.startswith(storage.path.name + "-")
        or p == storage.path
    )
    assert mine.encode() not in on_disk and theirs.encode() in on_disk


def _directory(storage: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    storage.path.mkdir(parents=True)


def _read_only(storage: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    """A database every connection may only read (as a read-only file does; file modes do not bind root)."""
    with SqliteRecorder(storage) as recorder:
        recorder.record(Event("chat", "1"))
    real = store_module._connect

    def connect(path: Path) -> sqlite3.Connection:
        db = real(path)
        db.execute("PRAGMA query_only = ON")
        return db

    monkeypatch.setattr(store_module, "_connect", connect)


@pytest.mark.parametrize("damage", [_directory, _read_only], ids=["directory", "read-only"])
async def test_an_unwritable_store_costs_analytics_never_a_reply(
    api: BotApiDouble,
    storage: Storage,
    monkeypatch: pytest.MonkeyPatch,
    damage: Callable[[Storage, pytest.MonkeyPatch], None],
) -> None:
    """Every patient gets the reply they would get anyway, and /forget sends the error text instead of a
    confirmation it cannot honour."""
    damage(storage, monkeypatch)
    brain = shipped_brain()
    messages = [message_of_kind(brain, kind) for kind in ("answer", "clarify", "fallback", "urgent", "chat")]
    with SqliteRecorder(storage) as recorder:
        async with running_bot(api, brain, recorder=recorder):
            for number, text in enumerate(messages):
                api.push_message(700 + number, text)
            for number, text in enumerate(messages):
                (reply,) = await api.replies(700 + number, 1)
                assert reply.plain.endswith(respond(brain, text).text)
            forget = await ask(api, PATIENT, "/forget")
            await api.settle(quiet=0.1)
        assert recorder.dropped >= len(messages)
    assert forget.plain == brain.texts["error"]
    assert len(api.sent) == len(messages) + 1
