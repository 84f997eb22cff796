"""`portbot telegram` as a real process: answers through the Bot API double, stops cleanly on SIGTERM, and
never writes the token (or a patient's message) to its output."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from botapi_double import BotApiDouble
from telegram_harness import message_of_kind, shipped_brain, shipped_knowledge

from bot.cli import main

PORTBOT = Path(sys.executable).with_name("portbot")


@pytest.fixture
async def api() -> AsyncIterator[BotApiDouble]:
    async with BotApiDouble() as double:
        yield double


def write_config(folder: Path, base_url: str) -> Path:
    config = folder / "config.yaml"
    config.write_text(
        f'knowledge:\n  path: "{shipped_knowledge()}"\n'
        f'telegram:\n  base_url: "{base_url}"\n  flood_limit_per_minute: 20\n'
        f"storage:\n  enabled: false\n",
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


async def test_portbot_telegram_answers_and_stops_on_sigterm(api: BotApiDouble, tmp_path: Path) -> None:
    """The CLI answers every message exactly once, also through 429 and 502 answers; SIGTERM exits 0."""
    brain = shipped_brain()
    output = tmp_path / "stderr.txt"
    process = await start(write_config(tmp_path, api.base_url), api.token, output)
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
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), timeout=20)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    log = output.read_text(encoding="utf-8", errors="replace")
    assert code == 0, log
    assert sorted(s.chat_id for s in api.sent) == sorted(questions)
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
