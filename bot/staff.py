"""What the staff commands of a chat front end say, and who may use them: plain text from a reload result
or the stored rows, no I/O of its own (the front end runs the slow parts in a worker thread)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence
from typing import Protocol

from bot.config import Settings
from bot.reload import ReloadResult
from bot.replies import Brain
from bot.report import build_report, stats_text
from bot.store import Row

STATS_DAYS = 7  # /stats without a number: the last week
MAX_STATS_DAYS = 3660


class RowSource(Protocol):
    """A recorder that can also read back what it kept (the SQLite store)."""

    def rows(self, since: dt.datetime | None = None) -> list[Row]: ...


def is_admin(settings: Settings, user_id: int | None) -> bool:
    return user_id is not None and user_id in settings.telegram.admins


def pseudonym(key: bytes, user_id: int | None) -> str:
    """A short keyed hash for the log, so repeated attempts can be told apart without keeping the user id.

    The key is random per process: the value means nothing outside this run and matches nothing in the store."""
    if user_id is None:
        return "unknown"
    return hmac.new(key, str(user_id).encode(), hashlib.sha256).hexdigest()[:10]


def new_key() -> bytes:
    return secrets.token_bytes(32)


def reload_text(brain: Brain, result: ReloadResult, text: Callable[[Brain, str], str]) -> str:
    """The reply to /reload: the staff-written `reloaded` or `reload_failed` text, then what happened.

    `brain` is the one being served after the reload; `text(brain, name)` looks up a fixed text."""
    if result.reloaded:
        warnings = sum(p.severity == "warning" for p in result.problems)
        details = f"reloaded {result.entries} entries"
        if warnings:
            details += f" ({warnings} warning(s); run `portbot validate`)"
        return f"{text(brain, 'reloaded')}\n{details}"
    return f"{text(brain, 'reload_failed')}\n{result.message}"


def stats_days(args: Sequence[str]) -> int | None:
    """The period of /stats from its arguments: none for the default week, else a whole number of days."""
    if not args:
        return STATS_DAYS
    if len(args) == 1 and args[0].isdigit() and 1 <= int(args[0]) <= MAX_STATS_DAYS:
        return int(args[0])
    return None


def stats_reply(brain: Brain, rows: Sequence[Row], since: dt.datetime, dropped: int = 0) -> str:
    """A few lines of counts for admins: the report of the rows since `since`, and any analytics lost."""
    out = stats_text(build_report(rows, brain, since))
    if dropped:
        out += f"\n{dropped} event(s) could not be recorded since the bot started; see its log."
    return out
