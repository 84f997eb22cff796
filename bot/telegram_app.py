"""Telegram front end: Telegram updates to and from the pure reply core (the only module that imports PTB).

Delivery policy (why a reply is sent exactly once). Bot API calls are resent with backoff only when the
request provably did not take effect: the connection could not be made, the connection pool had no free slot,
or the server answered 429 (AIORateLimiter waits `retry_after`) or 500/502/503 (the Bot API did not handle
it). When the outcome is unknown - the answer timed out, the connection broke after the request was written,
or a 504 - a request that changes nothing when repeated (answerCallbackQuery, editMessageReplyMarkup,
setMyCommands, ...) is resent, but sendMessage is not: resending could show the patient the same answer twice,
and the Bot API has no way to ask "did that arrive?". Such a send fails, and the error handler sends the
patient the apology instead, so the patient is never left without a reply; the price is that a patient may
rarely see an answer followed by the apology. The read timeout is generous so that a slow answer is waited for
rather than given up on.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from telegram import (
    BotCommand,
    BotCommandScopeChat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    MaybeInaccessibleMessage,
    Message,
    MessageEntity,
    ReplyParameters,
    Update,
)
from telegram.constants import ChatType, MessageLimit, ParseMode
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    ApplicationHandlerStop,
    BaseUpdateProcessor,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)
from telegram.request import HTTPXRequest

from bot import staff
from bot.config import TOKEN_VARIABLE, Settings
from bot.events import Event, NullRecorder, Recorder
from bot.reload import ReloadResult
from bot.replies import Brain, Reply, answer_entry, not_covered, respond
from bot.store import StoreError

log = logging.getLogger("portbot.telegram")

BrainSource = Callable[[], Brain]
Reload = Callable[[], ReloadResult]
ALLOWED_UPDATES = (Update.MESSAGE, Update.CALLBACK_QUERY)
COMMANDS = (
    ("start", "What this bot can and cannot do"),
    ("help", "How to ask a question"),
    ("topics", "Browse the questions by topic"),
    ("privacy", "What is kept, for how long, and /forget"),
    ("forget", "Delete everything kept about you"),
)
# Offered in the menu of admins' private chats only; the handlers check the sender whatever the menu says.
ADMIN_COMMANDS = (
    ("reload", "Staff: load the edited knowledge base now"),
    ("stats", "Staff: counts of the last 7 days (/stats 30 for 30)"),
)
MAX_DATA = 64  # bytes of callback data Telegram accepts
_MAX_REF = MAX_DATA - len("f:+:")  # the longest prefix we put in front of an entry reference
_RELATED = 3
_NOT_IDEMPOTENT = frozenset({"sendMessage"})
_CONTEXT = ContextTypes.DEFAULT_TYPE

# Used only when a staff-edited texts.yaml lacks one of these optional texts.
_DEFAULT_TEXTS = {
    "start": "Hello, I am PortBot, an automated assistant. I give general information about venous access "
    "ports. I cannot give medical advice. In an emergency, call {emergency_number}.",
    "help": "Type a question about your port. /topics lists what I know about.",
    "privacy": "I keep only what is needed to improve the guide, and delete it after {retention_days} days. "
    "Send /forget to delete it now.",
    "privacy_off": "I do not keep any record of your messages or of the buttons you tap.",
    "non_text": "Sorry, I can only read text messages.",
    "slow_down": "You are sending messages very fast. Please wait a minute.",
    "error": "Sorry, something went wrong. Please contact your care team.",
    "topics_prompt": "Choose a topic:",
    "feedback_thanks": "Thanks for the feedback",
    "forgotten": "Done. I have deleted what I kept about you.",
    "not_allowed": "Sorry, only staff can use that command.",
    "reloaded": "The knowledge base was reloaded.",
    "reload_failed": "The knowledge base was NOT reloaded; patients still get the previous version.",
}


# -- pure helpers: text splitting, callback data, flood limit ------------------------------------------------


def utf16_len(text: str) -> int:
    """Telegram measures message length in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int = MessageLimit.MAX_TEXT_LENGTH) -> list[str]:
    """Pieces of at most `limit` UTF-16 units, cut at a paragraph, else a line, a space, or anywhere."""
    pieces: list[str] = []
    rest = text.strip()
    while utf16_len(rest) > limit:
        units, end = 0, 0
        while end < len(rest) and units + utf16_len(rest[end]) <= limit:
            units += utf16_len(rest[end])
            end += 1
        window = rest[:end]
        cut = next((window.rfind(sep) for sep in ("\n\n", "\n", " ") if window.rfind(sep) >= end // 2), -1)
        if cut <= 0:
            cut = window.rfind(" ") if window.rfind(" ") > 0 else end
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].strip()
    pieces.append(rest)
    return [piece for piece in pieces if piece]


def entry_ref(brain: Brain, entry_id: str) -> str:
    """An entry id short enough for any callback data, or its position ("#12") when the id is too long."""
    if len(entry_id.encode("utf-8")) <= _MAX_REF:
        return entry_id
    return "#" + str(next(i for i, entry in enumerate(brain.kb.entries) if entry.id == entry_id))


def entry_from_ref(brain: Brain, ref: str) -> str | None:
    if ref.startswith("#"):
        index = int(ref[1:]) if ref[1:].isdigit() else -1
        return brain.kb.entries[index].id if 0 <= index < len(brain.kb.entries) else None
    return ref if ref in brain.kb.by_id else None


def category_data(brain: Brain, index: int, name: str) -> str:
    data = f"c:{name}"
    return data if len(data.encode("utf-8")) <= MAX_DATA else f"c#{index}"


def category_from_data(brain: Brain, data: str) -> str | None:
    categories = brain.kb.categories()
    if data.startswith("c#"):
        index = int(data[2:]) if data[2:].isdigit() else -1
        return categories[index] if 0 <= index < len(categories) else None
    name = data[2:]
    return name if name in categories else None


class FloodGate:
    """Per-user message count in fixed one-minute windows: over the limit, one notice, then silence."""

    def __init__(self, limit: int, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._users: dict[int, list[float]] = {}  # user -> [window start, count, notice sent (0/1)]

    def check(self, user: int) -> Literal["ok", "notice", "drop"]:
        if self.limit <= 0:
            return "ok"
        now = self.clock()
        if len(self._users) > 10_000:  # forget users whose window has passed, so memory stays bounded
            self._users = {u: s for u, s in self._users.items() if now - s[0] < self.window}
        state = self._users.get(user)
        if state is None or now - state[0] >= self.window:
            state = self._users[user] = [now, 0, 0]
        state[1] += 1
        if state[1] <= self.limit:
            return "ok"
        if not state[2]:
            state[2] = 1
            return "notice"
        return "drop"


# -- HTTP: retries and per-chat ordering ---------------------------------------------------------------------


class RetryingRequest(HTTPXRequest):
    """HTTPXRequest that resends Bot API calls after transient failures, as the module docstring says."""

    def __init__(
        self, *, attempts: int = 6, backoff: float = 0.25, max_backoff: float = 8.0, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.attempts, self.backoff, self.max_backoff = attempts, backoff, max_backoff

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: Any = None,
        read_timeout: Any = HTTPXRequest.DEFAULT_NONE,
        write_timeout: Any = HTTPXRequest.DEFAULT_NONE,
        connect_timeout: Any = HTTPXRequest.DEFAULT_NONE,
        pool_timeout: Any = HTTPXRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        api_method = url.rsplit("/", 1)[-1]  # the URL itself holds the token: never log it
        delay = self.backoff
        for attempt in range(1, self.attempts + 1):
            try:
                code, payload = await super().do_request(
                    url, method, request_data, read_timeout, write_timeout, connect_timeout, pool_timeout
                )
            except NetworkError as error:  # TimedOut is a NetworkError
                if attempt == self.attempts or not _may_resend(api_method, error):
                    raise
                why = type(error.__cause__ or error).__name__
            else:
                if code not in (500, 502, 503) and not (code == 504 and api_method not in _NOT_IDEMPOTENT):
                    return code, payload
                if attempt == self.attempts:
                    return code, payload
                why = f"HTTP {code}"
            log.warning("Bot API %s failed (%s); retrying in %.2f s", api_method, why, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_backoff)
        raise AssertionError("unreachable")


def _may_resend(api_method: str, error: NetworkError) -> bool:
    """True when the request never reached the server, or resending it cannot do harm."""
    not_sent = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
    return isinstance(error.__cause__, not_sent) or api_method not in _NOT_IDEMPOTENT


class PerChatProcessor(BaseUpdateProcessor):
    """Updates of different chats run concurrently; one chat's run in order, so replies keep their order."""

    def __init__(self, max_concurrent_updates: int) -> None:
        super().__init__(max_concurrent_updates)
        self._locks: dict[int, tuple[asyncio.Lock, list[int]]] = {}

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        chat = update.effective_chat if isinstance(update, Update) else None
        if chat is None:
            await coroutine
            return
        lock, users = self._locks.setdefault(chat.id, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                await coroutine
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._locks[chat.id]

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None


# -- the handlers --------------------------------------------------------------------------------------------


class _Front:
    """Handlers over one brain source and recorder; they keep no state about chats beyond the flood counts."""

    def __init__(
        self,
        settings: Settings,
        brain_source: BrainSource,
        recorder: Recorder,
        gate: FloodGate,
        reload: Reload | None = None,
    ) -> None:
        self.settings, self.brain_source, self.recorder, self.gate = settings, brain_source, recorder, gate
        self.reload = reload
        self._log_key = staff.new_key()  # for pseudonyms in the log only

    def install(self, app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        new = filters.UpdateType.MESSAGE
        app.add_handler(TypeHandler(Update, self.admit), group=-1)
        app.add_handler(CommandHandler("start", self.fixed("start"), filters=new))
        app.add_handler(CommandHandler("help", self.fixed("help"), filters=new))
        app.add_handler(CommandHandler("privacy", self.privacy, filters=new))
        app.add_handler(CommandHandler("topics", self.topics, filters=new))
        app.add_handler(CommandHandler("forget", self.forget, filters=new))
        app.add_handler(CommandHandler("reload", self.reload_command, filters=new))
        app.add_handler(CommandHandler("stats", self.stats, filters=new))
        app.add_handler(MessageHandler(new & filters.COMMAND, self.unknown_command))
        app.add_handler(MessageHandler(new & filters.TEXT, self.text))
        app.add_handler(MessageHandler(new & ~filters.TEXT & ~filters.StatusUpdate.ALL, self.non_text))
        app.add_handler(CallbackQueryHandler(self.button))
        app.add_error_handler(self.error)

    # Runs before every other handler: drops what the bot must not answer, and applies the flood limit.
    async def admit(self, update: Update, context: _CONTEXT) -> None:
        if update.callback_query is not None:
            return
        message = update.message
        if message is None:  # edited messages, channel posts: never answered (and not answered twice)
            raise ApplicationHandlerStop
        if message.chat.type != ChatType.PRIVATE and not _addressed(
            message, context.bot.id, context.bot.username
        ):
            raise ApplicationHandlerStop
        if message.new_chat_members or message.left_chat_member:
            raise ApplicationHandlerStop
        verdict = self.gate.check(_user(update))
        if verdict == "notice":
            await self.send(context, message, self.texts("slow_down"))
        if verdict != "ok":
            raise ApplicationHandlerStop

    def fixed(self, name: str) -> Callable[[Update, _CONTEXT], Coroutine[Any, Any, None]]:
        async def handler(update: Update, context: _CONTEXT) -> None:
            assert update.message is not None
            await self.send(context, update.message, self.texts(name))

        return handler

    async def unknown_command(self, update: Update, context: _CONTEXT) -> None:
        message = update.message
        assert message is not None and message.text is not None
        command = message.text.split()[0]
        if message.chat.type == ChatType.PRIVATE or command.lower().endswith(
            f"@{context.bot.username}".lower()
        ):
            await self.send(context, message, self.texts("help"))

    async def topics(self, update: Update, context: _CONTEXT) -> None:
        assert update.message is not None
        brain = self.brain_source()
        rows = [[(name, category_data(brain, i, name))] for i, name in enumerate(brain.kb.categories())]
        await self.send(context, update.message, _text(brain, "topics_prompt"), rows=rows)

    async def privacy(self, update: Update, context: _CONTEXT) -> None:
        assert update.message is not None
        name = "privacy" if self.settings.storage.enabled else "privacy_off"  # say only what is true
        await self.send(context, update.message, self.texts(name))

    async def forget(self, update: Update, context: _CONTEXT) -> None:
        """Delete the sender's records (the id string `text` and `button` record) and confirm only then."""
        assert update.message is not None
        brain = self.brain_source()
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, self.recorder.forget, str(_user(update)))
        except StoreError as error:
            log.error("/forget failed, and the patient was told so: %s", error)
            await self.send(context, update.message, _text(brain, "error"))
            return
        await self.send(context, update.message, _text(brain, "forgotten"))

    # -- staff commands: only for telegram.admins, in a private chat (stats may quote patients' questions) ---

    async def admitted(self, update: Update, context: _CONTEXT, command: str) -> bool:
        message = update.message
        assert message is not None
        user = update.effective_user.id if update.effective_user is not None else None
        if staff.is_admin(self.settings, user) and message.chat.type == ChatType.PRIVATE:
            return True
        who = "an admin outside a private chat" if staff.is_admin(self.settings, user) else "a non-admin user"
        log.warning("refused /%s from %s (ref %s)", command, who, staff.pseudonym(self._log_key, user))
        await self.send(context, message, self.texts("not_allowed"))
        return False

    async def reload_command(self, update: Update, context: _CONTEXT) -> None:
        if not await self.admitted(update, context, "reload"):
            return
        assert update.message is not None
        if self.reload is None:
            await self.send(context, update.message, "Live reload is not set up in this bot.")
            return
        result = await asyncio.get_running_loop().run_in_executor(None, self.reload)
        log.info("an admin used /reload: %s", "reloaded" if result.reloaded else "kept the previous version")
        brain = self.brain_source()  # after the reload, so a reworded `reloaded` text is used at once
        await self.send(context, update.message, staff.reload_text(brain, result, _text))

    async def stats(self, update: Update, context: _CONTEXT) -> None:
        if not await self.admitted(update, context, "stats"):
            return
        message = update.message
        assert message is not None
        days = staff.stats_days(context.args or ())
        rows_of = getattr(self.recorder, "rows", None)
        if days is None:
            text = f"Use /stats for the last {staff.STATS_DAYS} days, or /stats 30 for the last 30."
        elif not self.settings.storage.enabled or rows_of is None:
            text = "Nothing is recorded: the analytics store is off (storage.enabled: false)."
        else:
            brain = self.brain_source()
            since = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
            dropped = int(getattr(self.recorder, "dropped", 0))

            def work() -> str:
                return staff.stats_reply(brain, rows_of(since), since, dropped)

            try:
                text = await asyncio.get_running_loop().run_in_executor(None, work)
            except StoreError as error:
                log.error("/stats could not read the store: %s", error)
                text = f"Could not read the analytics store: {error}"
        await self.send(context, message, text)

    async def text(self, update: Update, context: _CONTEXT) -> None:
        message = update.message
        assert message is not None and message.text is not None
        question = message.text
        if message.chat.type != ChatType.PRIVATE and context.bot.username:
            question = _without_mention(question, context.bot.username)
        brain = self.brain_source()  # once per update: a reload swaps the whole brain between updates
        reply = respond(brain, question)
        kept = question if reply.kind in ("fallback", "clarify") else None  # never urgent messages
        self.record(Event(reply.kind, str(_user(update)), reply.entry, reply.score, kept))
        await self.send_reply(context, message, brain, reply)

    async def non_text(self, update: Update, context: _CONTEXT) -> None:
        assert update.message is not None
        await self.send(context, update.message, self.texts("non_text"))

    async def button(self, update: Update, context: _CONTEXT) -> None:
        query = update.callback_query
        assert query is not None
        data, user, brain = query.data or "", str(_user(update)), self.brain_source()
        message = query.message  # None only for inline-mode messages, which this bot does not send
        if data.startswith("f:") and data[2:4] in ("+:", "-:"):
            entry = entry_from_ref(brain, data[4:])
            self.record(Event("feedback", user, entry or data[4:], helpful=data[2] == "+"))
            await _quietly(query.answer(_text(brain, "feedback_thanks")))
            if isinstance(message, Message) and message.reply_markup is not None:
                await _quietly(query.edit_message_reply_markup(_without_feedback(message.reply_markup)))
            return
        await _quietly(query.answer())
        if message is None:
            return
        if data.startswith("a:"):
            entry_id = entry_from_ref(brain, data[2:])
            reply = (answer_entry(brain, entry_id) if entry_id else None) or not_covered(brain)
            self.record(Event(reply.kind, user, reply.entry))
            await self.send_reply(context, message, brain, reply)
        elif data == "n:":
            self.record(Event("none_of_these", user))
            await self.send_reply(context, message, brain, not_covered(brain))
        elif data.startswith("c:") or data.startswith("c#"):
            category = category_from_data(brain, data)
            if category is None:
                await self.topics_again(context, message, brain)
                return
            rows = [
                [(e.question, "a:" + entry_ref(brain, e.id))]
                for e in brain.kb.entries
                if e.category == category
            ]
            await self.send(context, message, _text(brain, "topics_prompt"), rows=rows, heading=category)

    async def topics_again(self, context: _CONTEXT, message: MaybeInaccessibleMessage, brain: Brain) -> None:
        rows = [[(name, category_data(brain, i, name))] for i, name in enumerate(brain.kb.categories())]
        await self.send(context, message, _text(brain, "topics_prompt"), rows=rows)

    async def error(self, update: object, context: _CONTEXT) -> None:
        """Log the failure without message text or token, and tell the patient rather than stay silent."""
        error = context.error
        what = "an update" if isinstance(update, Update) else "polling"
        log.error("handling %s failed: %s", what, type(error).__name__)
        if not isinstance(update, Update) or update.effective_chat is None or isinstance(error, Forbidden):
            return
        try:
            text = self.texts("error")
        except Exception:  # the brain itself may be what failed
            text = _DEFAULT_TEXTS["error"]
        try:
            await context.bot.send_message(
                update.effective_chat.id, html.escape(text), parse_mode=ParseMode.HTML
            )
        except TelegramError as again:
            log.error("could not send the apology either: %s", type(again).__name__)

    # -- sending ---

    def texts(self, name: str) -> str:
        return _text(self.brain_source(), name)

    def record(self, event: Event) -> None:
        try:
            self.recorder.record(event)
        except Exception as error:  # a broken store must not cost the patient the reply
            log.error("recording an event failed: %s", type(error).__name__)

    async def send_reply(
        self, context: _CONTEXT, message: MaybeInaccessibleMessage, brain: Brain, reply: Reply
    ) -> None:
        rows: list[list[tuple[str, str]]] = []
        heading = None
        if reply.kind == "answer" and reply.entry is not None:
            entry = brain.kb.entry(reply.entry)
            heading = entry.question if entry is not None else None
            rows = [[(question, "a:" + entry_ref(brain, rid))] for rid, question in reply.related[:_RELATED]]
            ref = entry_ref(brain, reply.entry)
            rows.append([("👍", f"f:+:{ref}"), ("👎", f"f:-:{ref}")])
        elif reply.kind == "clarify":
            rows = [[(c.question, "a:" + entry_ref(brain, c.entry))] for c in reply.candidates]
            rows.append([(_text(brain, "none_of_these"), "n:")])
        await self.send(context, message, reply.text, rows=rows, heading=heading)

    async def send(
        self,
        context: _CONTEXT,
        message: MaybeInaccessibleMessage,
        text: str,
        *,
        rows: Sequence[Sequence[tuple[str, str]]] = (),
        heading: str | None = None,
    ) -> None:
        """Send `text` (escaped; split if long) to the chat of `message`, buttons under the last piece."""
        full = f"{heading}\n\n{text}" if heading else text
        pieces = split_text(full)
        markup = (
            InlineKeyboardMarkup(
                [[InlineKeyboardButton(label, callback_data=data) for label, data in row] for row in rows]
            )
            if rows
            else None
        )
        quote = None
        if message.chat.type != ChatType.PRIVATE:
            quote = ReplyParameters(message.message_id, allow_sending_without_reply=True)
        for number, piece in enumerate(pieces):
            if number == 0 and heading and piece.startswith(heading):
                body = f"<b>{html.escape(heading)}</b>{html.escape(piece[len(heading) :])}"
            else:
                body = html.escape(piece)
            await context.bot.send_message(
                message.chat.id,
                body,
                parse_mode=ParseMode.HTML,
                reply_markup=markup if number == len(pieces) - 1 else None,
                reply_parameters=quote if number == 0 else None,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
            )


def _text(brain: Brain, name: str) -> str:
    if name in brain.texts:
        return brain.texts[name]
    return _DEFAULT_TEXTS[name].format(**brain.settings.placeholders())


def _user(update: Update) -> int:
    if update.effective_user is not None:
        return update.effective_user.id
    assert update.effective_chat is not None
    return update.effective_chat.id


def _addressed(message: Message, bot_id: int, username: str | None) -> bool:
    """In a group: a command (for this bot), a mention of the bot, or a reply to one of its messages."""
    replied = message.reply_to_message
    if replied is not None and replied.from_user is not None and replied.from_user.id == bot_id:
        return True
    mention = f"@{username}".casefold() if username else None
    for entity, text in {**message.parse_entities(), **message.parse_caption_entities()}.items():
        if entity.type == MessageEntity.BOT_COMMAND and entity.offset == 0:
            return "@" not in text or text.casefold().endswith(mention or "\0")
        if entity.type == MessageEntity.MENTION and text.casefold() == mention:
            return True
        if entity.type == MessageEntity.TEXT_MENTION and entity.user is not None and entity.user.id == bot_id:
            return True
    return False


def _without_mention(text: str, username: str) -> str:
    mention = f"@{username}"
    start = text.casefold().find(mention.casefold())
    return (text[:start] + text[start + len(mention) :]).strip() if start >= 0 else text


def _without_feedback(markup: InlineKeyboardMarkup) -> InlineKeyboardMarkup | None:
    rows = [
        [b for b in row if not str(b.callback_data or "").startswith("f:")] for row in markup.inline_keyboard
    ]
    kept = [row for row in rows if row]
    return InlineKeyboardMarkup(kept) if kept else None


async def _quietly(call: Awaitable[Any]) -> None:
    """Cosmetic calls (answering a press, removing buttons) may fail harmlessly: too old, already done."""
    try:
        await call
    except BadRequest as error:
        log.info("ignored a refused cosmetic call: %s", type(error).__name__)


def _post_init(
    admins: Sequence[int],
) -> Callable[[Application[Any, Any, Any, Any, Any, Any]], Coroutine[Any, Any, None]]:
    async def post_init(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        try:
            await app.bot.set_my_commands([BotCommand(name, text) for name, text in COMMANDS])
        except TelegramError as error:  # the menu is a convenience; the bot works without it
            log.warning("could not register the command menu: %s", type(error).__name__)
        staff_menu = [BotCommand(name, text) for name, text in COMMANDS + ADMIN_COMMANDS]
        refused = 0
        for admin in admins:
            try:
                await app.bot.set_my_commands(staff_menu, scope=BotCommandScopeChat(admin))
            except TelegramError:  # typically "chat not found": that admin has not opened the bot yet
                refused += 1
        if refused:
            log.info("the staff menu is not shown to %d admin(s) who have not started the bot yet", refused)
        log.info("PortBot is running on Telegram as @%s", app.bot.username)

    return post_init


# -- building and running ------------------------------------------------------------------------------------


def build_application(
    settings: Settings,
    brain_source: BrainSource,
    recorder: Recorder,
    *,
    rate_limit: bool = True,
    clock: Callable[[], float] = time.monotonic,
    reload: Reload | None = None,
) -> Application[Any, Any, Any, Any, Any, Any]:
    """The PTB Application: handlers, retries, rate limiter; `brain_source()` is read once per update, and
    `reload()` (KnowledgeSource.reload, say) serves the admin command /reload."""
    tg = settings.telegram
    if not tg.token:
        raise ValueError(f"no bot token; set the environment variable {TOKEN_VARIABLE}")
    # Opt in to PTB's future time periods (timedelta, not int): without it PTB 22 warns each time it builds a
    # RetryAfter for a 429, which floods the log and, under pytest's filterwarnings=error, becomes an
    # exception.
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    builder = (
        ApplicationBuilder()
        .token(tg.token)
        .base_url(tg.base_url)
        .request(
            RetryingRequest(
                connection_pool_size=64,
                connect_timeout=5.0,
                read_timeout=15.0,
                write_timeout=10.0,
                pool_timeout=5.0,
            )
        )
        .get_updates_request(HTTPXRequest(connection_pool_size=2, connect_timeout=5.0, read_timeout=10.0))
        .concurrent_updates(PerChatProcessor(256))
        .post_init(_post_init(tg.admins))
    )
    app = (builder.rate_limiter(AIORateLimiter(max_retries=3)) if rate_limit else builder).build()
    _Front(settings, brain_source, recorder, FloodGate(tg.flood_limit, clock=clock), reload).install(app)
    return app


class _Redacting(logging.Formatter):
    """One line per record, secrets blanked. Tracebacks are cut to the exception's type and message: a stack
    dump helps no one on a production server, and library messages sometimes quote the token (PTB's
    InvalidToken does)."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.secrets = [s for s in secrets if s]

    def formatException(self, ei: Any) -> str:
        return f"({ei[0].__name__}: {ei[1]})" if ei and ei[0] else ""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record).replace("\n", " ")
        for secret in self.secrets:
            text = text.replace(secret, "[redacted]")
        return text


def _setup_logging(secrets: Sequence[str]) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Redacting(secrets))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    # httpx logs every request URL at INFO, and URLs hold the token; PTB's DEBUG logs hold message texts.
    for name, level in (
        ("httpx", logging.WARNING),
        ("httpcore", logging.WARNING),
        ("telegram", logging.INFO),
        ("apscheduler", logging.WARNING),
    ):
        logging.getLogger(name).setLevel(level)


async def serve(
    app: Application[Any, Any, Any, Any, Any, Any],
    settings: Settings,
    stop: asyncio.Event,
    background: Sequence[Callable[[], Coroutine[Any, Any, None]]] = (),
) -> None:
    """Initialise (errors surface here, once), poll or listen for the webhook until `stop` is set, then stop
    cleanly: PTB finishes the updates in hand before `app.stop()` returns. `background` coroutines (a
    knowledge watcher, say) run alongside and are cancelled at the end."""
    tg = settings.telegram
    async with app:  # initialize() checks the token with getMe; shutdown() on the way out, whatever happens
        if app.post_init:
            await app.post_init(app)
        assert app.updater is not None
        if tg.mode == "webhook":
            assert tg.webhook_url is not None
            await app.updater.start_webhook(
                listen=tg.listen,
                port=tg.port,
                url_path=urlsplit(tg.webhook_url).path.strip("/"),
                webhook_url=tg.webhook_url,
                secret_token=tg.secret_token,
                allowed_updates=list(ALLOWED_UPDATES),
            )
        else:
            await app.updater.start_polling(
                poll_interval=0.0, timeout=10, allowed_updates=list(ALLOWED_UPDATES)
            )
        await app.start()
        log.info("PortBot is answering (%s); stop it with SIGTERM or Ctrl-C", tg.mode)
        tasks = [asyncio.create_task(make()) for make in background]
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        log.info("stopping: finishing the replies in hand")
        await app.updater.stop()
        await app.stop()


def run(
    settings: Settings,
    brain: Brain,
    recorder: Recorder | None = None,
    brain_source: BrainSource | None = None,
    background: Sequence[Callable[[], Coroutine[Any, Any, None]]] = (),
    reload: Reload | None = None,
) -> int:
    """`portbot telegram`: run until SIGTERM or Ctrl-C; one-line errors and a non-zero exit code on failure.

    `brain_source`, when given, is asked for the current brain on every update (live reload); else `brain` is
    used. `background` coroutine factories run in the bot's event loop until it stops; `reload` serves the
    admin command /reload."""
    tg = settings.telegram
    if not tg.token:
        sys.stderr.write(
            f"portbot: no bot token; set the environment variable {TOKEN_VARIABLE} "
            "(BotFather gives you the token)\n"
        )
        return 2
    if tg.mode == "webhook" and not tg.webhook_url:
        sys.stderr.write("portbot: telegram.mode is webhook but telegram.webhook_url is not set\n")
        return 2
    _setup_logging([tg.token, tg.secret_token or ""])
    app = build_application(
        settings, brain_source or (lambda: brain), recorder or NullRecorder(), reload=reload
    )
    server = urlsplit(tg.base_url).netloc or "the Bot API"

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await serve(app, settings, stop, background)

    try:
        asyncio.run(main())
    except InvalidToken:
        sys.stderr.write(f"portbot: the Bot API at {server} refused the bot token; check {TOKEN_VARIABLE}\n")
        return 1
    except NetworkError as error:
        sys.stderr.write(f"portbot: cannot reach the Bot API at {server} ({type(error).__name__})\n")
        return 1
    except TelegramError as error:
        sys.stderr.write(
            f"portbot: the Bot API at {server} refused to start the bot ({type(error).__name__})\n"
        )
        return 1
    except OSError as error:  # webhook mode: the port is taken or not allowed
        sys.stderr.write(
            f"portbot: cannot listen on {tg.listen}:{tg.port} ({error.strerror or type(error).__name__})\n"
        )
        return 1
    log.info("PortBot stopped")
    return 0
