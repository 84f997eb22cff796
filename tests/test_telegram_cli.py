"""`portbot telegram` as a real process: answers through the Bot API double, records to the SQLite store,
picks up knowledge edits, stops cleanly on SIGTERM, and never writes the token (or a patient's message) to
its output."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sqlite3
import sys
from pathlib import Path

import pytest
from botapi_double import BotApiDouble
from telegram_harness import message_of_kind, shipped_brain, shipped_knowledge

from bot.cli import main

PORTBOT = Path(sys.executable).with_name("portbot")
ADMIN = 424242
QUESTION = "how many times can a port be used"  # answered by number-of-punctures, which says "2,000"


def write_config(
    folder: Path, base_url: str, knowledge: Path | None = None, store: str | None = None
) -> Path:
    """A config for the double; with `store`, the SQLite store at that path (relative to the config file), a
    knowledge watcher looking every 0.2 s and one admin."""
    config = folder / "config.yaml"
    storage = f'storage:\n  path: "{store}"\n' if store else "storage:\n  enabled: false\n"
    config.write_text(
        f'knowledge:\n  path: "{knowledge or shipped_knowledge()}"\n  reload_seconds: 0.2\n'
        f'telegram:\n  base_url: "{base_url}"\n  flood_limit_per_minute: 20\n  admins: [{ADMIN}]\n'
        + storage,
        encoding="utf-8",
    )
    return config


async def start(config: Path, token: str, stderr: Path) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if k != "TELEGRAM_BOT_TOKEN"}
    env["TELEGRAM_BOT_TOKEN"] = token
    command = [str(PORTBOT)] if PORTBOT.exists() else [sys.executable, "-m", "bot"]
    with stderr.open("wb") as err:
        return await asyncio.create_subprocess_exec(
            *command, "telegram", "--config", str(config), env=env, cwd=config.parent, stdout=err, stderr=err
        )


async def test_portbot_telegram_answers_and_stops_on_sigterm(
    api: BotApiDouble, tmp_path: Path, kb_copy: Path
) -> None:
    """The CLI answers every message exactly once, also through 429 and 502 answers, records each reply in the
    configured SQLite file, serves an edited answer within seconds, answers /reload; SIGTERM exits 0."""
    brain = shipped_brain()
    output = tmp_path / "stderr.txt"
    config = write_config(tmp_path, api.base_url, knowledge=kb_copy, store="data/bot.sqlite3")
    process = await start(config, api.token, output)
    try:
        await api.wait_for(lambda: api.polling, timeout=30, what="the bot to start polling")
        api.inject("sendMessage", "429", 1, retry_after=1)
        api.inject("sendMessage", "502", 2)
        questions = {
            chat: brain.kb.entries[chat % len(brain.kb.entries)].question for chat in range(301, 311)
        }
        questions[311] = message_of_kind(brain, "urgent")
        for chat, text in questions.items():
            api.push_message(chat, text)
        await api.wait_for(lambda: len(api.sent) >= len(questions), timeout=30, what="every reply")
        replied = sorted(s.chat_id for s in api.sent)

        path = kb_copy / "faq" / "using-your-port.yaml"
        path.write_text(path.read_text(encoding="utf-8").replace("2,000", "3,000"), encoding="utf-8")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5.0
        for chat in itertools.count(400):  # a new patient each time, so the flood limit never applies
            api.push_message(chat, QUESTION)
            (reply,) = await api.replies(chat, 1)
            if "3,000" in reply.plain:
                break
            assert loop.time() < deadline, "the edited answer was not live within 5 seconds"
            await asyncio.sleep(0.1)
        api.push_message(ADMIN, "/reload")
        (reloaded,) = await api.replies(ADMIN, 1)
        assert f"reloaded {len(brain.kb.entries)} entries" in reloaded.plain
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), timeout=20)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    log = output.read_text(encoding="utf-8", errors="replace")
    assert code == 0, log
    assert replied == sorted(questions)
    store = tmp_path / "data" / "bot.sqlite3"
    assert store.is_file(), "the store is created in the configured storage path"
    db = sqlite3.connect(store)
    try:
        kinds = dict(db.execute("SELECT kind, count(*) FROM events GROUP BY kind").fetchall())
        kept = db.execute("SELECT count(*) FROM events WHERE message IS NOT NULL").fetchone()[0]
    finally:
        db.close()
    assert kinds["urgent"] == 1 and sum(kinds.values()) == len(questions) + chat - 399
    assert kept == 0, "answered and urgent messages' words are never stored"
    assert api.token not in log
    assert api.token.split(":")[1] not in log
    for text in questions.values():
        assert text not in log, "patients' messages must never be logged"
    assert "HTTP Request" not in log, "httpx must not log request URLs"
    assert api.unknown == []


async def test_a_refused_token_is_a_one_line_error(api: BotApiDouble, tmp_path: Path) -> None:
    """A token the Bot API refuses gives one line on stderr, without the token, and a non-zero exit."""
    output = tmp_path / "stderr.txt"
    wrong = "999:WRONG-secret-token"
    process = await start(write_config(tmp_path, api.base_url), wrong, output)
    try:
        code = await asyncio.wait_for(process.wait(), timeout=30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    log = output.read_text(encoding="utf-8", errors="replace")
    assert code != 0
    assert "WRONG-secret-token" not in log
    last = log.strip().splitlines()[-1]
    assert last.startswith("portbot: ") and "TELEGRAM_BOT_TOKEN" in last


def test_a_missing_token_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without TELEGRAM_BOT_TOKEN, `portbot telegram` says so in one line and exits non-zero."""
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    config = write_config(tmp_path, "http://127.0.0.1:9/bot")
    code = main(["telegram", "--config", str(config)])
    err = capsys.readouterr().err
    assert code != 0
    assert len(err.strip().splitlines()) == 1
    assert "TELEGRAM_BOT_TOKEN" in err


def test_an_invalid_knowledge_base_is_a_one_line_error(
    tmp_path: Path, kb_copy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A knowledge base with errors at start: one line naming file and line, exit 2, and no token in it."""
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:SECRET-token-value")
    (kb_copy / "faq" / "zz-broken.yaml").write_text("entries:\n  - id: oops\n\tquestion: tab\n", "utf-8")
    config = write_config(tmp_path, "http://127.0.0.1:9/bot", knowledge=kb_copy, store="data/bot.sqlite3")
    code = main(["telegram", "--config", str(config)])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "zz-broken.yaml:3" in err and "SECRET" not in err
    assert not (tmp_path / "data").exists(), "nothing is created when the bot cannot start"
