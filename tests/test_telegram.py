"""The Telegram front end end to end: the real PTB Application over HTTP against the Bot API double on
127.0.0.1.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from botapi_double import BotApiDouble, utf16_len
from telegram_harness import fixture_brain, message_of_kind, running_bot, shipped_brain

from bot.events import Event, MemoryRecorder
from bot.replies import Brain, Reply, answer_entry, not_covered, respond
from bot.telegram_app import COMMANDS, MAX_DATA

KINDS = ("answer", "clarify", "fallback", "urgent", "chat")
NON_TEXT = ("photo", "sticker", "voice", "document", "location", "video", "contact")


@pytest.fixture
def brain() -> Brain:
    return shipped_brain()


def shown(brain: Brain, reply: Reply) -> str:
    """What the patient should read for a reply: answers open with their question."""
    if reply.kind == "answer" and reply.entry:
        entry = brain.kb.entry(reply.entry)
        assert entry is not None
        return f"{entry.question}\n\n{reply.text}"
    return reply.text


def events(recorder: object) -> list[Event]:
    assert isinstance(recorder, MemoryRecorder)
    return recorder.events


async def test_startup_registers_the_command_menu(api: BotApiDouble) -> None:
    """At start the bot registers /start, /help, /topics, /privacy and /forget (no staff command) and calls
    no unknown method."""
    async with running_bot(api):
        await api.wait_for(lambda: api.polling, what="polling to start")
    assert (
        [c["command"] for c in api.commands]
        == [name for name, _ in COMMANDS]
        == ["start", "help", "topics", "privacy", "forget"]
    )
    assert api.methods("deleteWebhook"), "polling must clear any webhook first"
    assert api.unknown == []
    assert set(api.poll_params["allowed_updates"]) == {"message", "callback_query"}


@pytest.mark.parametrize("command", ["start", "help", "privacy", "forget"])
async def test_fixed_commands(api: BotApiDouble, brain: Brain, command: str) -> None:
    """Each command answers with its staff-written text from texts.yaml."""
    name = "forgotten" if command == "forget" else command
    async with running_bot(api):
        api.push_message(7, f"/{command}")
        (reply,) = await api.replies(7, 1)
    assert reply.plain == brain.texts[name]


async def test_start_says_what_the_bot_is(brain: Brain) -> None:
    """The welcome: automated, general information, no medical advice, and the emergency number."""
    text = brain.texts["start"].casefold()
    for needle in (
        "automated",
        "not a person",
        "general information",
        "medical advice",
        "symptoms",
        brain.settings.care_team.emergency_number,
    ):
        assert needle.casefold() in text


async def test_forget_deletes_the_users_records(api: BotApiDouble, brain: Brain) -> None:
    """/forget removes every event of that user and no one else's."""
    recorder = MemoryRecorder()
    async with running_bot(api, recorder=recorder):
        api.push_message(8, message_of_kind(brain, "answer"))
        api.push_message(9, message_of_kind(brain, "answer"))
        await api.replies(8, 1)
        api.push_message(8, "/forget")
        await api.replies(8, 2)
        await api.replies(9, 1)
    assert [e.user for e in recorder.events] == ["9"]


@pytest.mark.parametrize("kind", KINDS)
async def test_free_text_gets_the_core_reply(api: BotApiDouble, brain: Brain, kind: str) -> None:
    """Free text gets exactly the core's reply of each kind, the right buttons, and one event recorded."""
    text = message_of_kind(brain, kind)
    expected = respond(brain, text)
    recorder = MemoryRecorder()
    async with running_bot(api, recorder=recorder):
        api.push_message(11, text)
        (reply,) = await api.replies(11, 1)
    assert reply.plain == shown(brain, expected)
    data = [d for _, d in reply.buttons()]
    if kind == "answer":
        assert expected.entry is not None
        assert data == [f"a:{rid}" for rid, _ in expected.related[:3]] + [
            f"f:+:{expected.entry}",
            f"f:-:{expected.entry}",
        ]
        assert reply.text.startswith("<b>")
    elif kind == "clarify":
        assert data == [f"a:{c.entry}" for c in expected.candidates] + ["n:"]
        assert reply.buttons()[-1][0] == brain.texts["none_of_these"]
    else:
        assert data == []
    (event,) = events(recorder)
    assert (event.kind, event.user, event.entry, event.score) == (kind, "11", expected.entry, expected.score)
    # Only questions the guide could not settle are offered to the store, and never an urgent message.
    assert event.message == (text if kind in ("clarify", "fallback") else None)


async def test_clarify_buttons_and_none_of_these(api: BotApiDouble, brain: Brain) -> None:
    """A candidate button sends that answer; "None of these" sends the not-covered reply and records it."""
    recorder = MemoryRecorder()
    async with running_bot(api, recorder=recorder):
        api.push_message(12, message_of_kind(brain, "clarify"))
        (clarify,) = await api.replies(12, 1)
        label, data = clarify.buttons()[0]
        api.push_callback(clarify, data)
        replies = await api.replies(12, 2)
        api.push_callback(clarify, "n:")
        replies = await api.replies(12, 3)
        await api.wait_for(lambda: len(api.answered) == 2, what="both presses answered")
    chosen = answer_entry(brain, data[2:])
    assert chosen is not None
    assert replies[1].plain == shown(brain, chosen)
    assert replies[1].plain.startswith(label)
    assert replies[2].plain == not_covered(brain).text
    assert [e.kind for e in events(recorder)] == ["clarify", "answer", "none_of_these"]


async def test_related_button_sends_that_answer(api: BotApiDouble, brain: Brain) -> None:
    """Pressing a related question under an answer sends that question's answer."""
    text = next(e.question for e in brain.kb.entries if e.related)
    async with running_bot(api):
        api.push_message(13, text)
        (answer,) = await api.replies(13, 1)
        label, data = answer.buttons()[0]
        api.push_callback(answer, data)
        replies = await api.replies(13, 2)
    assert replies[1].plain.split("\n\n")[0] == label


@pytest.mark.parametrize(("button", "helpful"), [(-2, True), (-1, False)])
async def test_feedback_is_recorded_thanked_and_removed(
    api: BotApiDouble, brain: Brain, button: int, helpful: bool
) -> None:
    """👍/👎 records feedback, answers the press with thanks and removes only the feedback buttons."""
    recorder = MemoryRecorder()
    async with running_bot(api, recorder=recorder):
        api.push_message(14, next(e.question for e in brain.kb.entries if e.related))
        (answer,) = await api.replies(14, 1)
        before = answer.buttons()
        query = api.push_callback(answer, before[button][1])
        await api.wait_for(lambda: api.methods("editMessageReplyMarkup"), what="the buttons to be edited")
    assert api.answered[query]["text"] == brain.texts["feedback_thanks"] == "Thanks for the feedback"
    assert answer.buttons() == before[:-2]  # the related questions stay
    feedback = events(recorder)[-1]
    assert (feedback.kind, feedback.user, feedback.helpful) == ("feedback", "14", helpful)
    assert feedback.entry == before[button][1][4:]
    assert len(api.sent_to(14)) == 1, "feedback gets no new message"


async def test_topics_browse_categories_then_questions(api: BotApiDouble, brain: Brain) -> None:
    """/topics lists the categories; a category lists its questions; a question sends its answer."""
    async with running_bot(api):
        api.push_message(15, "/topics")
        (topics,) = await api.replies(15, 1)
        category = brain.kb.categories()[1]
        api.push_callback(topics, dict(topics.buttons())[category])
        questions = (await api.replies(15, 2))[1]
        _, data = questions.buttons()[0]
        api.push_callback(questions, data)
        answer = (await api.replies(15, 3))[2]
    assert [label for label, _ in topics.buttons()] == list(brain.kb.categories())
    assert topics.plain == brain.texts["topics_prompt"]
    assert [q for q, _ in questions.buttons()] == [
        e.question for e in brain.kb.entries if e.category == category
    ]
    assert questions.plain.startswith(category)
    entry = brain.kb.entry(data[2:])
    assert entry is not None and entry.category == category
    assert answer.plain.startswith(entry.question)


@pytest.mark.parametrize("kind", NON_TEXT)
async def test_non_text_messages_get_a_polite_notice(api: BotApiDouble, brain: Brain, kind: str) -> None:
    """Photos, stickers, voice, files, locations, videos and contacts get "I can only read text messages"."""
    async with running_bot(api):
        api.push_message(16, None, kind=kind)
        (reply,) = await api.replies(16, 1)
    assert reply.plain == brain.texts["non_text"]


async def test_edited_messages_are_not_answered_twice(api: BotApiDouble, brain: Brain) -> None:
    """Editing a message does not produce a second reply."""
    async with running_bot(api):
        original = api.push_message(17, message_of_kind(brain, "answer"))
        await api.replies(17, 1)
        api.push_edit(original, message_of_kind(brain, "chat"))
        api.push_message(
            17, "/help"
        )  # same chat, so handled after the edit: its reply proves the edit was seen
        replies = await api.replies(17, 2)
        await api.settle()
    assert len(api.sent_to(17)) == 2
    assert replies[1].plain == brain.texts["help"]


async def test_group_rules(api: BotApiDouble, brain: Brain) -> None:
    """In a group the bot answers commands, mentions and replies to its messages, and nothing else."""
    group = -100500
    question = message_of_kind(brain, "answer")
    async with running_bot(api):
        api.push_message(group, question, user_id=21, chat_type="group")  # not addressed: ignored
        api.push_message(group, "/help", user_id=21, chat_type="group")
        api.push_message(group, None, user_id=21, chat_type="group", kind="photo")  # ignored
        api.push_message(group, "/help@some_other_bot", user_id=21, chat_type="group")  # another bot's
        api.push_mention(group, question, user_id=22)
        first = await api.replies(group, 2)
        api.push_message(
            group,
            message_of_kind(brain, "chat"),
            user_id=23,
            chat_type="group",
            reply_to=api.bot_message(first[0], chat_type="group"),
        )
        api.push_message(group, f"/start@{api.username}", user_id=21, chat_type="group")
        replies = await api.replies(group, 4)
        await api.settle()
    assert [r.plain for r in api.sent_to(group)] == [
        brain.texts["help"],
        shown(brain, respond(brain, question)),
        respond(brain, message_of_kind(brain, "chat")).text,
        brain.texts["start"],
    ]
    assert all(c.params.get("reply_parameters") for c in api.methods("sendMessage")), "group replies quote"
    assert len(replies) == 4


async def test_long_answer_is_split_cleanly(api: BotApiDouble, tmp_path: Path) -> None:
    """An answer over 4096 characters arrives in pieces cut between paragraphs, buttons under the last."""
    brain = fixture_brain(tmp_path)
    entry = brain.kb.entry("zebra-leaflet-long-answer")
    assert entry is not None and len(entry.answer) > 4096
    expected = answer_entry(brain, entry.id)
    assert expected is not None
    async with running_bot(api, brain):
        api.push_message(31, entry.question)
        await api.wait_for(
            lambda: api.sent_to(31) and api.sent_to(31)[-1].reply_markup, what="the last piece"
        )
    pieces = api.sent_to(31)
    assert len(pieces) >= 2
    assert all(utf16_len(p.plain) <= 4096 for p in pieces)
    assert "\n\n".join(p.plain for p in pieces) == shown(brain, expected)
    assert all(p.reply_markup is None for p in pieces[:-1])
    assert pieces[0].text.startswith(f"<b>{entry.question}</b>")


async def test_knowledge_text_is_html_escaped(api: BotApiDouble, tmp_path: Path) -> None:
    """Questions and answers with <, > and & reach the patient exactly as staff typed them."""
    brain = fixture_brain(tmp_path)
    entry = brain.kb.entry("marmalade-symbols")
    assert entry is not None and "<" in entry.question and "&" in entry.answer
    async with running_bot(api, brain):
        api.push_message(32, entry.question)
        (reply,) = await api.replies(32, 1)
    assert reply.plain.startswith(f"{entry.question}\n\n{entry.answer}")
    assert "<script>" not in reply.text and "&lt;script&gt;" in reply.text


async def test_callback_data_falls_back_to_an_index_for_long_ids(api: BotApiDouble, tmp_path: Path) -> None:
    """An entry id too long for the 64-byte callback data is referred to by position, and still works."""
    brain = fixture_brain(tmp_path)
    long_id = next(e.id for e in brain.kb.entries if len(e.id) > MAX_DATA - 4)
    async with running_bot(api, brain):
        api.push_message(33, "marmalade symbols")
        (answer,) = await api.replies(33, 1)
        label, data = next((label, data) for label, data in answer.buttons() if data.startswith("a:#"))
        api.push_callback(answer, data)
        replies = await api.replies(33, 2)
    assert all(len(d.encode()) <= MAX_DATA for _, d in answer.buttons())
    entry = brain.kb.entry(long_id)
    assert entry is not None and label == entry.question
    assert replies[1].plain.startswith(entry.question)


async def test_a_new_brain_is_used_from_the_next_update(
    api: BotApiDouble, brain: Brain, tmp_path: Path
) -> None:
    """The brain source is read for each update, so a reloaded knowledge base answers from the next message
    on; background tasks (the knowledge watcher) run while the bot serves and are cancelled when it stops."""
    bigger = fixture_brain(tmp_path)
    current = [brain]
    watched: list[str] = []

    async def watcher() -> None:
        watched.append("started")
        try:
            await asyncio.Event().wait()
        finally:
            watched.append("stopped")

    async with running_bot(api, brain_source=lambda: current[0], background=[watcher]):
        api.push_message(34, "quilted zebra leaflet")
        (before,) = await api.replies(34, 1)
        current[0] = bigger
        api.push_message(34, "quilted zebra leaflet")
        after = (await api.replies(34, 2))[1]
    assert not before.plain.startswith("What does the quilted zebra leaflet say?")
    assert after.plain.startswith("What does the quilted zebra leaflet say?")
    assert watched == ["started", "stopped"]
