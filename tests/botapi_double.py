"""A Telegram Bot API stand-in on 127.0.0.1: records every call, checks what Telegram checks, injects faults.

Tests and bench/telegram_throughput.py import it as a top-level module (`tests/` is on sys.path): the real
python-telegram-bot client talks HTTP to it through `base_url`, exactly as it would to a self-hosted Bot API
server.
"""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import re
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TOKEN = "123456:TEST-token-for-the-double"
MAX_TEXT = 4096
MAX_CALLBACK_DATA = 64
MAX_ALERT = 200
HTML_TAGS = frozenset(
    {
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "a",
        "code",
        "pre",
        "span",
        "tg-spoiler",
        "tg-emoji",
        "blockquote",
    }
)
_JSON_FIELDS = frozenset(
    {
        "reply_markup",
        "allowed_updates",
        "commands",
        "entities",
        "link_preview_options",
        "reply_parameters",
        "scope",
    }
)
_INT_FIELDS = frozenset({"chat_id", "message_id", "offset", "limit", "timeout", "cache_time", "user_id"})
_MARKUP = re.compile(
    r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s[^<>]*)?)>|&(?:lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);|[<>&]"
)
_NON_TEXT = {
    "photo": lambda: [{"file_id": "p1", "file_unique_id": "u1", "width": 90, "height": 90}],
    "sticker": lambda: {
        "file_id": "s1",
        "file_unique_id": "u2",
        "type": "regular",
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
    },
    "voice": lambda: {"file_id": "v1", "file_unique_id": "u3", "duration": 3},
    "document": lambda: {"file_id": "d1", "file_unique_id": "u4", "file_name": "scan.pdf"},
    "location": lambda: {"latitude": 52.5, "longitude": 13.4},
    "video": lambda: {"file_id": "w1", "file_unique_id": "u5", "width": 640, "height": 480, "duration": 5},
    "contact": lambda: {"phone_number": "+490000", "first_name": "Ann"},
}


class ApiError(Exception):
    """A Bot API error answer: HTTP status and description, as Telegram words them."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


@dataclass
class Call:
    """One HTTP request the bot made; `fault` names the injected fault it got instead of a normal answer."""

    method: str
    params: dict[str, Any]
    fault: str | None = None
    at: float = field(default_factory=time.monotonic)


@dataclass
class Fault:
    kind: str  # "429", "500", "502", "400", "drop" (connection closed, request not processed), "slow"
    retry_after: int = 1
    delay: float = 1.0


@dataclass
class Sent:
    """A message the bot sent and the double accepted (its markup may change later through edits)."""

    chat_id: int
    message_id: int
    text: str  # as sent, with HTML markup
    plain: str  # as the patient sees it
    reply_markup: dict[str, Any] | None

    def buttons(self) -> list[tuple[str, str]]:
        """(label, callback_data) of every inline button, row by row."""
        rows = (self.reply_markup or {}).get("inline_keyboard", [])
        return [(b["text"], b.get("callback_data", "")) for row in rows for b in row]


def html_to_plain(text: str) -> str:
    """What Telegram shows for an HTML message; ApiError (400) when the markup would be refused."""
    stack: list[str] = []
    out: list[str] = []
    pos = 0
    for match in _MARKUP.finditer(text):
        out.append(text[pos : match.start()])
        pos = match.end()
        token = match.group(0)
        if match.group(2) is not None:
            closing, name = match.group(1) == "/", match.group(2).lower()
            if name not in HTML_TAGS:
                raise ApiError(400, f'Bad Request: can\'t parse entities: unsupported start tag "{name}"')
            if closing:
                if not stack or stack.pop() != name:
                    raise ApiError(400, f'Bad Request: can\'t parse entities: unmatched end tag "{name}"')
            else:
                stack.append(name)
        elif token in "<>&":
            raise ApiError(400, f'Bad Request: can\'t parse entities: unescaped "{token}"')
        else:
            out.append(html.unescape(token))
    out.append(text[pos:])
    if stack:
        raise ApiError(
            400, f"Bad Request: can't parse entities: can't find end tag corresponding to \"{stack[-1]}\""
        )
    return "".join(out)


def utf16_len(text: str) -> int:
    """Telegram counts message length in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


class BotApiDouble:
    """The Bot API on an ephemeral 127.0.0.1 port. Use as `async with BotApiDouble() as api:`."""

    def __init__(self, token: str = TOKEN, username: str = "portbot_test_bot") -> None:
        self.token = token
        self.bot_id = int(token.split(":")[0])
        self.username = username
        self.calls: list[Call] = []
        self.unknown: list[str] = []
        self.sent: list[Sent] = []
        self.commands: list[dict[str, Any]] = []  # the default menu
        self.chat_commands: dict[int, list[dict[str, Any]]] = {}  # chat id -> menu of BotCommandScopeChat
        self.webhook: dict[str, Any] = {}
        self.answered: dict[str, dict[str, Any]] = {}  # callback query id -> answerCallbackQuery params
        self.getupdates_concurrency_max = 0
        self._updates: deque[dict[str, Any]] = deque()
        self._update_ids = itertools.count(1)
        self._message_ids: dict[int, itertools.count[int]] = defaultdict(lambda: itertools.count(1))
        self._callback_ids = itertools.count(1)
        self._open_queries: set[str] = set()
        self._by_message: dict[tuple[int, int], Sent] = {}
        self._faults: dict[str, deque[Fault]] = defaultdict(deque)
        self._waiters: set[asyncio.Future[None]] = set()
        self._polling = 0
        self.poll_params: dict[str, Any] = {}  # the parameters of the latest getUpdates, from when it arrived
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=1 << 20)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        self.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> BotApiDouble:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """What goes into `telegram.base_url`: PTB appends the token and the method."""
        return f"http://127.0.0.1:{self.port}/bot"

    # -- what tests push -------------------------------------------------------------------------------------

    def push_update(self, body: dict[str, Any]) -> int:
        """Queue one raw update (without update_id) for getUpdates; returns its update_id."""
        update_id = next(self._update_ids)
        self._updates.append({"update_id": update_id, **body})
        self._notify()
        return update_id

    def make_message(
        self,
        chat_id: int,
        text: str | None = None,
        *,
        user_id: int | None = None,
        chat_type: str = "private",
        kind: str = "text",
        entities: list[dict[str, Any]] | None = None,
        reply_to: dict[str, Any] | None = None,
        message_id: int | None = None,
    ) -> dict[str, Any]:
        """A Message object from a patient (or a group member when chat_type is "group")."""
        user = user_id if user_id is not None else chat_id
        chat: dict[str, Any] = {"id": chat_id, "type": chat_type}
        if chat_type == "private":
            chat["first_name"] = f"Patient{user}"
        else:
            chat["title"] = f"Group {chat_id}"
        message: dict[str, Any] = {
            "message_id": message_id if message_id is not None else next(self._message_ids[chat_id]),
            "date": int(time.time()),
            "chat": chat,
            "from": {"id": user, "is_bot": False, "first_name": f"Patient{user}"},
        }
        if kind == "text":
            message["text"] = text
            if text is not None and text.startswith("/"):
                command = text.split()[0]
                message["entities"] = [{"type": "bot_command", "offset": 0, "length": utf16_len(command)}]
        else:
            message[kind] = _NON_TEXT[kind]()
            if text is not None:
                message["caption"] = text
        if entities is not None:
            message["entities"] = entities
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        return message

    def push_message(self, chat_id: int, text: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """Queue a new message; returns the Message object (for replies and edits)."""
        message = self.make_message(chat_id, text, **kwargs)
        self.push_update({"message": message})
        return message

    def push_edit(self, message: dict[str, Any], new_text: str) -> None:
        """Queue an edited_message update for a message pushed earlier."""
        edited = {**message, "text": new_text, "edit_date": int(time.time())}
        self.push_update({"edited_message": edited})

    def push_mention(self, chat_id: int, text: str, *, user_id: int) -> dict[str, Any]:
        """A group message that mentions the bot by @username, with the entity Telegram adds."""
        mention = f"@{self.username}"
        body = f"{mention} {text}"
        entity = {"type": "mention", "offset": 0, "length": utf16_len(mention)}
        return self.push_message(chat_id, body, user_id=user_id, chat_type="group", entities=[entity])

    def bot_message(self, sent: Sent, chat_type: str = "private") -> dict[str, Any]:
        """The Message object of something the bot sent, as Telegram embeds it in callbacks and replies."""
        message: dict[str, Any] = {
            "message_id": sent.message_id,
            "date": int(time.time()),
            "chat": {"id": sent.chat_id, "type": chat_type, "first_name": "Patient"},
            "from": {"id": self.bot_id, "is_bot": True, "first_name": "PortBot", "username": self.username},
            "text": sent.plain,
        }
        if sent.reply_markup:
            message["reply_markup"] = sent.reply_markup
        return message

    def push_callback(self, sent: Sent, data: str, *, user_id: int | None = None) -> str:
        """A button press on a message the bot sent; returns the callback query id."""
        query_id = str(next(self._callback_ids))
        self._open_queries.add(query_id)
        user = user_id if user_id is not None else sent.chat_id
        self.push_update(
            {
                "callback_query": {
                    "id": query_id,
                    "chat_instance": f"ci{sent.chat_id}",
                    "data": data,
                    "from": {"id": user, "is_bot": False, "first_name": f"Patient{user}"},
                    "message": self.bot_message(sent),
                }
            }
        )
        return query_id

    def inject(
        self, method: str, kind: str, times: int = 1, *, retry_after: int = 1, delay: float = 1.0
    ) -> None:
        """The next `times` calls of `method` get this fault instead of (for "slow": before) the answer."""
        for _ in range(times):
            self._faults[method].append(Fault(kind, retry_after, delay))

    # -- what tests read -------------------------------------------------------------------------------------

    @property
    def polling(self) -> bool:
        """True while a getUpdates long poll is waiting (calls are recorded only when they are answered)."""
        return self._polling > 0

    def sent_to(self, chat_id: int) -> list[Sent]:
        return [s for s in self.sent if s.chat_id == chat_id]

    def methods(self, name: str) -> list[Call]:
        return [c for c in self.calls if c.method == name]

    async def wait_for(
        self, predicate: Callable[[], object], timeout: float = 20.0, what: str = "condition"
    ) -> None:
        """Return as soon as `predicate()` holds; AssertionError after `timeout` seconds.

        Checked after every call and pushed update, and every 50 ms for predicates on state outside the
        double."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
            await self._change(min(remaining, 0.05))

    async def replies(self, chat_id: int, count: int, timeout: float = 20.0) -> list[Sent]:
        """Wait until the bot has sent at least `count` messages to `chat_id`; returns them all."""
        await self.wait_for(
            lambda: len(self.sent_to(chat_id)) >= count, timeout, f"{count} message(s) to chat {chat_id}"
        )
        return self.sent_to(chat_id)

    async def settle(self, quiet: float = 0.3, timeout: float = 20.0) -> None:
        """Wait until all pushed updates were fetched and no call came in for `quiet` seconds.

        Used only to check that nothing *more* arrives (a negative check cannot be awaited directly)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if not await self._change(quiet) and (not self._updates or self._polling):
                return

    def _notify(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def _change(self, timeout: float) -> bool:
        """Wait for the next call or pushed update; False after `timeout` seconds without one.

        The waiter is registered before this coroutine first yields, so no change between a check and the wait
        is missed (an asyncio.Event shared and cleared by several waiters would lose wake-ups)."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self._waiters.discard(waiter)

    # -- the API ---------------------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        params = await _params(request)
        if request.match_info["token"] != self.token:
            self._record(Call(method, params, "unauthorized"))
            return _error(ApiError(401, "Unauthorized"))
        queue = self._faults.get(method)
        fault = queue.popleft() if queue else None
        if fault is not None and fault.kind != "slow":
            self._record(Call(method, params, fault.kind))
            return _fault(request, fault)
        if fault is not None:
            await asyncio.sleep(fault.delay)
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            self.unknown.append(method)
            self._record(Call(method, params, "unknown"))
            return web.json_response({"ok": True, "result": True})
        try:
            result = await handler(params)
        except ApiError as error:
            self._record(Call(method, params, f"error {error.status}"))
            return _error(error)
        self._record(Call(method, params, "slow" if fault else None))
        return web.json_response({"ok": True, "result": result})

    def _record(self, call: Call) -> None:
        self.calls.append(call)
        self._notify()

    def _me(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "PortBot",
            "username": self.username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    async def _api_getMe(self, params: dict[str, Any]) -> Any:
        return self._me()

    async def _api_getUpdates(self, params: dict[str, Any]) -> Any:
        offset = params.get("offset")
        if offset:
            while self._updates and self._updates[0]["update_id"] < offset:
                self._updates.popleft()
        limit = params.get("limit") or 100
        timeout = params.get("timeout") or 0
        self.poll_params = params
        self._polling += 1
        self.getupdates_concurrency_max = max(self.getupdates_concurrency_max, self._polling)
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while not self._updates and loop.time() < deadline:
                await self._change(deadline - loop.time())
        finally:
            self._polling -= 1
        return list(itertools.islice(self._updates, limit))

    async def _api_sendMessage(self, params: dict[str, Any]) -> Any:
        chat_id, text = params.get("chat_id"), params.get("text")
        if not isinstance(chat_id, int):
            raise ApiError(400, "Bad Request: chat not found")
        if not text:
            raise ApiError(400, "Bad Request: message text is empty")
        plain = html_to_plain(text) if str(params.get("parse_mode", "")).upper() == "HTML" else text
        if not plain.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if utf16_len(plain) > MAX_TEXT:
            raise ApiError(400, "Bad Request: message is too long")
        markup = _checked_markup(params.get("reply_markup"))
        sent = Sent(chat_id, next(self._message_ids[chat_id]), text, plain, markup)
        self.sent.append(sent)
        self._by_message[(chat_id, sent.message_id)] = sent
        return {**self.bot_message(sent), "text": plain}

    def _find(self, params: dict[str, Any]) -> Sent:
        sent = self._by_message.get((params.get("chat_id"), params.get("message_id")))  # type: ignore[arg-type]
        if sent is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        return sent

    async def _api_editMessageReplyMarkup(self, params: dict[str, Any]) -> Any:
        sent = self._find(params)
        markup = _checked_markup(params.get("reply_markup"))
        if (markup or None) == (sent.reply_markup or None):
            raise ApiError(400, "Bad Request: message is not modified")
        sent.reply_markup = markup
        return self.bot_message(sent)

    async def _api_editMessageText(self, params: dict[str, Any]) -> Any:
        sent = self._find(params)
        text = params.get("text") or ""
        plain = html_to_plain(text) if str(params.get("parse_mode", "")).upper() == "HTML" else text
        if utf16_len(plain) > MAX_TEXT or not plain.strip():
            raise ApiError(400, "Bad Request: message text is empty or too long")
        markup = _checked_markup(params.get("reply_markup"))
        if text == sent.text and markup == sent.reply_markup:
            raise ApiError(400, "Bad Request: message is not modified")
        sent.text, sent.plain, sent.reply_markup = text, plain, markup
        return self.bot_message(sent)

    async def _api_answerCallbackQuery(self, params: dict[str, Any]) -> Any:
        query_id = str(params.get("callback_query_id"))
        if query_id not in self._open_queries:
            raise ApiError(
                400, "Bad Request: query is too old and response timeout expired or query ID is invalid"
            )
        if len(params.get("text") or "") > MAX_ALERT:
            raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        self._open_queries.discard(query_id)
        self.answered[query_id] = params
        return True

    async def _api_setMyCommands(self, params: dict[str, Any]) -> Any:
        commands = params.get("commands") or []
        for command in commands:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", command.get("command", "")) or not command.get(
                "description"
            ):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
        scope = params.get("scope") or {"type": "default"}
        if scope.get("type") == "chat":
            self.chat_commands[int(scope["chat_id"])] = commands
        elif scope.get("type") == "default":
            self.commands = commands
        else:
            raise ApiError(400, "Bad Request: unsupported scope in this double")
        return True

    async def _api_getMyCommands(self, params: dict[str, Any]) -> Any:
        scope = params.get("scope") or {"type": "default"}
        if scope.get("type") == "chat":
            return self.chat_commands.get(int(scope["chat_id"]), [])
        return self.commands

    async def _api_deleteMyCommands(self, params: dict[str, Any]) -> Any:
        self.commands = []
        return True

    async def _api_deleteWebhook(self, params: dict[str, Any]) -> Any:
        self.webhook = {}
        return True

    async def _api_setWebhook(self, params: dict[str, Any]) -> Any:
        self.webhook = params
        return True

    async def _api_getWebhookInfo(self, params: dict[str, Any]) -> Any:
        return {
            "url": self.webhook.get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": 0,
        }

    async def _api_sendChatAction(self, params: dict[str, Any]) -> Any:
        return True

    async def _api_close(self, params: dict[str, Any]) -> Any:
        return True

    async def _api_logOut(self, params: dict[str, Any]) -> Any:
        return True


async def _params(request: web.Request) -> dict[str, Any]:
    if request.content_type == "application/json":
        body = await request.json()
        return dict(body) if isinstance(body, dict) else {}
    form = await request.post() if request.can_read_body else {}
    out: dict[str, Any] = dict(request.query)
    for key, value in form.items():
        if not isinstance(value, str):
            continue
        if key in _JSON_FIELDS:
            try:
                out[key] = json.loads(value)
            except ValueError:
                out[key] = value
        elif key in _INT_FIELDS:
            try:
                out[key] = int(value)
            except ValueError:
                out[key] = value
        else:
            out[key] = value
    return out


def _checked_markup(markup: Any) -> dict[str, Any] | None:
    if not markup:
        return None
    rows = markup.get("inline_keyboard")
    if not isinstance(rows, list):
        raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
    for row in rows:
        for button in row:
            if not button.get("text"):
                raise ApiError(400, "Bad Request: BUTTON_TEXT_INVALID")
            data = button.get("callback_data")
            if data is not None and not 1 <= len(data.encode("utf-8")) <= MAX_CALLBACK_DATA:
                raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
    return dict(markup)


def _error(error: ApiError) -> web.Response:
    return web.json_response(
        {"ok": False, "error_code": error.status, "description": error.description}, status=error.status
    )


def _fault(request: web.Request, fault: Fault) -> web.StreamResponse:
    if fault.kind == "429":
        return web.json_response(
            {
                "ok": False,
                "error_code": 429,
                "description": f"Too Many Requests: retry after {fault.retry_after}",
                "parameters": {"retry_after": fault.retry_after},
            },
            status=429,
        )
    if fault.kind == "502":
        # What Telegram's front proxy sends when the Bot API behind it fails: HTML, not JSON.
        return web.Response(
            status=502,
            text="<html><center><h1>502 Bad Gateway</h1></center></html>",
            content_type="text/html",
        )
    if fault.kind == "drop":
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)  # never reaches the client: the connection is gone
    status = int(fault.kind)
    return _error(
        ApiError(status, "Internal Server Error" if status >= 500 else "Bad Request: injected fault")
    )
