"""End-to-end updates per second through the Bot API double: the PortBot FAQ bot against a bare PTB echo bot.

.venv/bin/python bench/telegram_throughput.py [--updates 2000] [--users 200] [--rounds 3]

Both bots run the real python-telegram-bot client over HTTP against tests/botapi_double.py on 127.0.0.1, in
this process and event loop (so the double's own work is shared equally by both). Both handle updates
concurrently with the same connection pool and no rate limiter, so the difference is the cost of the FAQ bot's
own work per message: matching, composing, escaping, buttons and recording. Target: the FAQ bot at 90 % or
more of the echo bot's rate. A last row shows the FAQ bot as deployed, with AIORateLimiter: it is held to
Telegram's ~30 messages a second. Not a test: the figures depend on the machine. The double and the harness
are imported from tests/ (sys.path below).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from botapi_double import BotApiDouble  # noqa: E402
from telegram import Update  # noqa: E402
from telegram.ext import Application, ApplicationBuilder, ContextTypes, MessageHandler, filters  # noqa: E402
from telegram.request import HTTPXRequest  # noqa: E402
from telegram_harness import message_of_kind, settings_for, shipped_brain  # noqa: E402

from bot.events import MemoryRecorder  # noqa: E402
from bot.telegram_app import ALLOWED_UPDATES, build_application  # noqa: E402

Builder = Callable[[BotApiDouble], Application[Any, Any, Any, Any, Any, Any]]


def echo_bot(api: BotApiDouble) -> Application[Any, Any, Any, Any, Any, Any]:
    """The PTB tutorial's echo bot, given the same concurrency and connection pool as PortBot."""

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None and update.message.text is not None
        await update.message.reply_text(update.message.text)

    app = (
        ApplicationBuilder()
        .token(api.token)
        .base_url(api.base_url)
        .request(HTTPXRequest(connection_pool_size=64))
        .get_updates_request(HTTPXRequest(connection_pool_size=2))
        .concurrent_updates(256)
        .build()
    )
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
    return app


def faq_bot(rate_limit: bool) -> Builder:
    brain = shipped_brain()

    def build(api: BotApiDouble) -> Application[Any, Any, Any, Any, Any, Any]:
        settings = settings_for(
            api, flood_limit=0
        )  # 10 messages a user in a few seconds is a bench, not a flood
        return build_application(settings, lambda: brain, MemoryRecorder(), rate_limit=rate_limit)

    return build


def messages() -> list[str]:
    """A realistic mix: the ways patients ask (every phrasing in the knowledge base, typos included), small
    talk, unclear and uncovered questions, and an urgent report."""
    brain = shipped_brain()
    mix = [phrasing for entry in brain.kb.entries for phrasing in entry.phrasings]
    extra = [message_of_kind(brain, kind) for kind in ("chat", "clarify", "fallback", "urgent")]
    return [text for n, text in enumerate(mix) for text in ([text, extra[n % 4]] if n % 10 == 0 else [text])]


async def measure(build: Builder, updates: int, users: int) -> float:
    """Updates per second from pushing `updates` messages until the double has every reply."""
    texts = messages()
    async with BotApiDouble() as api:
        app = build(api)
        await app.initialize()
        await app.updater.start_polling(poll_interval=0.0, timeout=5, allowed_updates=list(ALLOWED_UPDATES))
        await app.start()
        try:
            await api.wait_for(lambda: api.polling, what="polling to start")
            start = time.perf_counter()
            for n in range(updates):
                api.push_message(10_000 + n % users, texts[n % len(texts)])
            await api.wait_for(lambda: len(api.sent) >= updates, timeout=600, what=f"{updates} replies")
            elapsed = time.perf_counter() - start
        finally:
            await app.updater.stop()
            await app.stop()
            await app.shutdown()
        if len(api.sent) != updates or len({s.chat_id for s in api.sent}) != min(users, updates):
            raise SystemExit(f"lost or doubled replies: {len(api.sent)} for {updates} updates")
    return updates / elapsed


async def bench(updates: int, users: int, rounds: int, limited: int) -> None:
    echo, faq = [], []
    for _ in range(rounds):  # alternate, so drift in machine load hits both alike
        echo.append(await measure(echo_bot, updates, users))
        faq.append(await measure(faq_bot(rate_limit=False), updates, users))
    deployed = await measure(faq_bot(rate_limit=True), limited, min(users, limited)) if limited else None
    best_echo, best_faq = max(echo), max(faq)
    print(f"{updates} updates from {users} users, best of {rounds} rounds (median in brackets)\n")
    print(f"{'bot':<36} {'updates/s':>10}")
    print(f"{'bare PTB echo bot':<36} {best_echo:>10.0f}  ({statistics.median(echo):.0f})")
    print(f"{'PortBot FAQ bot (no rate limiter)':<36} {best_faq:>10.0f}  ({statistics.median(faq):.0f})")
    if deployed is not None:
        note = f"({limited} updates; Telegram allows ~30/s)"
        print(f"{'PortBot FAQ bot, AIORateLimiter':<36} {deployed:>10.0f}  {note}")
    ratio = best_faq / best_echo
    print(f"\nFAQ / echo: {ratio:.0%} (target >= 90%: {'met' if ratio >= 0.9 else 'NOT met'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--limited", type=int, default=300, help="updates for the rate-limited row (0: skip)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    asyncio.run(bench(args.updates, args.users, args.rounds, args.limited))


if __name__ == "__main__":
    main()
