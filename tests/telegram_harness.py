"""Runs the real PortBot Telegram Application against the Bot API double; shared by the tests and the bench.

Importable as a top-level module: pytest puts tests/ on sys.path, and bench/telegram_throughput.py inserts it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import shutil
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botapi_double import BotApiDouble

from bot import config
from bot.events import MemoryRecorder, Recorder
from bot.knowledge import load_knowledge
from bot.reload import ReloadResult
from bot.replies import Brain, build_brain, respond
from bot.telegram_app import build_application, serve

FIXTURE_KB = Path(__file__).resolve().parent / "fixtures" / "telegram_kb"


def shipped_knowledge() -> Path:
    return config.BUNDLED_KNOWLEDGE


@functools.cache
def shipped_brain() -> Brain:
    """The brain over the shipped knowledge/ folder, with default settings."""
    return build_brain(load_knowledge(shipped_knowledge()), config.Settings())


def fixture_brain(workdir: Path) -> Brain:
    """The shipped knowledge plus tests/fixtures/telegram_kb (long answer, HTML symbols, an over-long id)."""
    folder = workdir / "knowledge"
    shutil.copytree(shipped_knowledge(), folder)
    shutil.copytree(FIXTURE_KB, folder, dirs_exist_ok=True)
    return build_brain(load_knowledge(folder), config.Settings())


def settings_for(
    api: BotApiDouble, storage: config.Storage | None = None, **telegram: Any
) -> config.Settings:
    tg = dataclasses.replace(config.Telegram(), token=api.token, base_url=api.base_url, **telegram)
    return dataclasses.replace(config.Settings(), telegram=tg, storage=storage or config.Storage())


def message_of_kind(brain: Brain, kind: str) -> str:
    """A message the core answers with a `kind` reply, found in the knowledge itself (robust to edits)."""
    tries: list[str] = []
    if kind == "answer":
        tries = [entry.question for entry in brain.kb.entries]
    elif kind == "chat":
        tries = ["hello", "thank you", "bye"]
    elif kind == "fallback":
        tries = ["qwertyuiop zxcvbnm", "my goldfish likes jazz music", "recipe for banana bread"]
    elif kind == "urgent":
        tries = [
            "I have chest pain and cannot breathe",
            "i have a fever of 39",
            "my port is red hot and swollen",
        ]
    elif kind == "clarify":
        words = [w.strip("?,.").lower() for e in brain.kb.entries for w in e.question.split()]
        tries = [
            "port",
            "risk",
            "problems",
            "catheter",
            *words,
            *(" ".join(e.question.split()[-3:]) for e in brain.kb.entries),
        ]
    for text in tries:
        if respond(brain, text).kind == kind:
            return text
    raise AssertionError(f"no test message found that gets a {kind!r} reply")


@dataclass
class RunningBot:
    app: Any
    api: BotApiDouble
    recorder: Recorder
    errors: list[BaseException] = field(default_factory=list)


@asynccontextmanager
async def running_bot(
    api: BotApiDouble,
    brain: Brain | None = None,
    *,
    brain_source: Callable[[], Brain] | None = None,
    recorder: Recorder | None = None,
    strict: bool = True,
    rate_limit: bool = True,
    clock: Callable[[], float] = time.monotonic,
    background: Sequence[Callable[[], Coroutine[Any, Any, None]]] = (),
    reload: Callable[[], ReloadResult] | None = None,
    storage: config.Storage | None = None,
    **telegram: Any,
) -> AsyncIterator[RunningBot]:
    """Build the app as `portbot telegram` does, serve it (polling the double, or the webhook) and stop it on
    exit.

    Every handler error is recorded; with `strict`, any error fails the test on exit."""
    chosen = brain or shipped_brain()
    source = brain_source or (lambda: chosen)
    recorder = recorder if recorder is not None else MemoryRecorder()
    settings = settings_for(api, storage, **telegram)
    app = build_application(settings, source, recorder, rate_limit=rate_limit, clock=clock, reload=reload)
    bot = RunningBot(app, api, recorder)

    async def record_error(update: object, context: Any) -> None:
        bot.errors.append(context.error)

    app.add_error_handler(record_error)
    stop = asyncio.Event()
    serving = asyncio.create_task(
        serve(app, settings, stop, background)
    )  # the very start-up and shut-down `portbot telegram` runs
    started = (lambda: api.webhook) if settings.telegram.mode == "webhook" else (lambda: api.polling)
    await api.wait_for(lambda: (started() and app.running) or serving.done(), what="the bot to start")
    if serving.done():
        serving.result()  # raises the start-up error
    try:
        yield bot
    finally:
        stop.set()
        await asyncio.wait_for(serving, 30)
    if strict and bot.errors:
        raise AssertionError(f"handler errors: {[type(e).__name__ + ': ' + str(e) for e in bot.errors]}")
