"""The Telegram front end under load and faults: many users, flooding, 429/5xx/slow/dropped answers, handler
errors, and webhook mode - through the real PTB Application against the Bot API double."""

from __future__ import annotations

import socket
from typing import Any

import aiohttp
import pytest
from botapi_double import BotApiDouble
from telegram.error import BadRequest, NetworkError
from telegram_harness import message_of_kind, running_bot, shipped_brain

from bot.events import MemoryRecorder
from bot.replies import Brain, respond


@pytest.fixture
def brain() -> Brain:
    return shipped_brain()


def pool(brain: Brain) -> list[str]:
    """Messages of several kinds, so concurrent replies differ from chat to chat."""
    return [e.question for e in brain.kb.entries[:12]] + [
        message_of_kind(brain, k) for k in ("chat", "fallback")
    ]


def expected_text(brain: Brain, message: str) -> str:
    reply = respond(brain, message)
    if reply.kind == "answer" and reply.entry:
        entry = brain.kb.entry(reply.entry)
        assert entry is not None
        return f"{entry.question}\n\n{reply.text}"
    return reply.text


def push_rounds(api: BotApiDouble, messages: list[str], users: range, rounds: int, step: int) -> dict[int, list[str]]:
    """Each user sends `rounds` messages, round by round; what each user sent, in order."""
    sent: dict[int, list[str]] = {u: [] for u in users}
    for round_ in range(rounds):
        for n, user in enumerate(users):
            text = messages[(n * step + round_) % len(messages)]
            sent[user].append(text)
            api.push_message(user, text)
    return sent


def assert_each_answered_in_order(api: BotApiDouble, brain: Brain, sent: dict[int, list[str]]) -> None:
    """Exactly one reply per message, in each user's own chat, in the order sent."""
    assert len(api.sent) == sum(map(len, sent.values()))
    for user, texts in sent.items():
        assert [s.plain for s in api.sent_to(user)] == [expected_text(brain, m) for m in texts]


async def test_many_users_at_once(api: BotApiDouble, brain: Brain) -> None:
    """50 users x 3 messages: every message gets exactly one reply, in its own chat, in order."""
    async with running_bot(api):
        sent = push_rounds(api, pool(brain), range(1000, 1050), rounds=3, step=3)
        await api.wait_for(lambda: len(api.sent) >= 150, timeout=60, what="150 replies")
        await api.settle()
    assert_each_answered_in_order(api, brain, sent)


async def test_flooding_gets_one_notice_and_no_crash(api: BotApiDouble, brain: Brain) -> None:
    """Over the per-minute limit a user gets one slow-down notice, then silence until the minute is over."""
    now, reads = [1000.0], [0]

    def clock() -> float:
        reads[0] += 1  # the gate reads the clock once per message
        return now[0]

    question = message_of_kind(brain, "answer")
    async with running_bot(api, flood_limit=5, clock=clock) as bot:
        for _ in range(9):
            api.push_message(41, question)
        api.push_message(42, question)  # someone else is not slowed down
        await api.replies(42, 1)
        await api.wait_for(lambda: reads[0] == 10, what="all ten messages to pass the gate")
        now[0] += 61  # the next minute
        api.push_message(41, "/help")
        replies = await api.replies(41, 7)
    texts = [r.plain for r in replies]
    assert texts.count(brain.texts["slow_down"]) == 1
    assert texts[5] == brain.texts["slow_down"]
    assert texts[:5] == [expected_text(brain, question)] * 5
    assert texts[6] == brain.texts["help"]
    assert bot.errors == []


async def test_injected_faults_lose_nothing_and_double_nothing(api: BotApiDouble, brain: Brain) -> None:
    """429 with retry_after, bursts of 502s, 500s and slow answers: each message gets exactly one reply."""
    messages = pool(brain)
    api.inject("sendMessage", "429", 2, retry_after=1)
    api.inject("sendMessage", "502", 3)
    api.inject("sendMessage", "500", 1)
    api.inject("sendMessage", "slow", 2, delay=1.5)
    api.inject("answerCallbackQuery", "502", 2)
    api.inject("editMessageReplyMarkup", "429", 1, retry_after=1)
    async with running_bot(api) as bot:
        for user in range(2000, 2012):
            api.push_message(user, messages[user % len(messages)])
        await api.wait_for(lambda: len(api.sent) >= 12, timeout=60, what="12 replies")
        answer = next(s for s in api.sent if s.buttons() and s.buttons()[-1][1].startswith("f:"))
        query = api.push_callback(answer, answer.buttons()[-1][1])
        await api.wait_for(
            lambda: query in api.answered and answer.buttons()[-1][1][:2] != "f:",
            timeout=30,
            what="the feedback press to be answered and its buttons removed",
        )
        await api.settle()
    faults = [c.fault for c in api.calls if c.fault and c.fault != "slow"]
    assert sorted(faults) == sorted(["429"] * 3 + ["502"] * 5 + ["500"]), "every injected fault was hit"
    for user in range(2000, 2012):
        assert [s.plain for s in api.sent_to(user)] == [expected_text(brain, messages[user % len(messages)])]
    assert bot.errors == []


async def test_a_burst_through_faults_answers_every_message_once(api: BotApiDouble, brain: Brain) -> None:
    """60 users x 2 messages while Telegram answers 429s and bursts of 502s to the sends, and drops or fails the
    long polls that fetch the messages: every message gets exactly one reply, in its own chat, in order."""
    async with running_bot(api) as bot:
        api.inject("sendMessage", "429", 3, retry_after=1)
        api.inject("sendMessage", "502", 6)
        for kind in ("drop", "502", "drop"):  # the polls after the one already waiting
            api.inject("getUpdates", kind, 1)
        sent = push_rounds(api, pool(brain), range(4000, 4060), rounds=2, step=1)
        await api.wait_for(lambda: len(api.sent) >= 120, timeout=120, what="120 replies")
        await api.settle()
    assert_each_answered_in_order(api, brain, sent)
    faults = sorted(c.fault for c in api.calls if c.fault)
    assert faults == sorted(["429"] * 3 + ["502"] * 7 + ["drop"] * 2), "every injected fault was hit"
    assert bot.errors == []


async def test_dropped_send_is_not_resent_but_apologised_for(api: BotApiDouble, brain: Brain) -> None:
    """A sendMessage whose connection drops may have been delivered: it is not resent; the patient gets the
    apology.

    This is the documented trade-off: never the same answer twice, never silence."""
    api.inject("sendMessage", "drop", 1)
    async with running_bot(api, strict=False) as bot:
        api.push_message(51, message_of_kind(brain, "answer"))
        (reply,) = await api.replies(51, 1)
        await api.settle()
    assert reply.plain == brain.texts["error"]
    assert len(api.sent_to(51)) == 1
    assert [type(e) for e in bot.errors] == [NetworkError]


async def test_dropped_idempotent_calls_are_retried(api: BotApiDouble, brain: Brain) -> None:
    """Answering a button press and editing buttons are safe to repeat, so a dropped connection is retried."""
    async with running_bot(api) as bot:
        api.push_message(52, message_of_kind(brain, "answer"))
        (answer,) = await api.replies(52, 1)
        api.inject("answerCallbackQuery", "drop", 1)
        api.inject("editMessageReplyMarkup", "drop", 1)
        query = api.push_callback(answer, answer.buttons()[-2][1])
        await api.wait_for(
            lambda: query in api.answered and not any(d.startswith("f:") for _, d in answer.buttons()),
            what="press answered and feedback buttons removed",
        )
    assert [c.fault for c in api.methods("answerCallbackQuery")] == ["drop", None]
    assert bot.errors == []


async def test_a_failing_send_gets_the_user_an_apology(api: BotApiDouble, brain: Brain) -> None:
    """When a handler fails (here Telegram refuses the reply), the error handler apologises: no silence."""
    api.inject("sendMessage", "400", 1)
    async with running_bot(api, strict=False) as bot:
        api.push_message(53, message_of_kind(brain, "answer"))
        (reply,) = await api.replies(53, 1)
    assert reply.plain == brain.texts["error"]
    assert brain.settings.care_team.name in reply.plain
    assert [type(e) for e in bot.errors] == [BadRequest]


async def test_a_broken_brain_still_gets_an_apology(api: BotApiDouble, brain: Brain) -> None:
    """Even when the knowledge cannot be read, the patient hears something went wrong and whom to contact."""
    broken = [True]

    def source() -> Brain:
        if broken[0]:
            raise RuntimeError("knowledge unavailable")
        return brain

    async with running_bot(api, brain_source=source, strict=False) as bot:
        api.push_message(54, "hello")
        (reply,) = await api.replies(54, 1)
        broken[0] = False
        api.push_message(54, "hello")
        replies = await api.replies(54, 2)
    assert "went wrong" in reply.plain and "care team" in reply.plain
    assert replies[1].plain == respond(brain, "hello").text
    assert [type(e) for e in bot.errors] == [RuntimeError]


async def test_a_broken_recorder_costs_no_reply(api: BotApiDouble, brain: Brain) -> None:
    """A store that raises does not stop the patient's reply."""

    class Broken(MemoryRecorder):
        def record(self, event: Any) -> None:
            raise OSError("disk full")

    async with running_bot(api, recorder=Broken()):
        api.push_message(55, message_of_kind(brain, "answer"))
        (reply,) = await api.replies(55, 1)
    assert reply.plain == expected_text(brain, message_of_kind(brain, "answer"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_webhook_mode(api: BotApiDouble, brain: Brain) -> None:
    """Webhook mode registers its URL and secret, answers updates Telegram posts, and refuses others."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}/portbot"
    secret = "s3cret-Token_1"
    question = message_of_kind(brain, "answer")
    update = {"update_id": 1, "message": api.make_message(61, question)}
    async with running_bot(
        api, mode="webhook", listen="127.0.0.1", port=port, webhook_url=url, secret_token=secret
    ):
        async with aiohttp.ClientSession() as session:
            async with session.post(
                url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"}
            ) as bad:
                assert bad.status == 403
            async with session.post(
                url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": secret}
            ) as good:
                assert good.status == 200
        (reply,) = await api.replies(61, 1)
    assert api.webhook["url"] == url and api.webhook["secret_token"] == secret
    assert reply.plain == expected_text(brain, question)
    assert not api.methods("getUpdates")
