"""Fast checks of the Telegram front end's pure parts and its resend policy, below HTTP (no server)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from telegram.error import NetworkError, TimedOut
from telegram_harness import fixture_brain, shipped_brain

from bot.telegram_app import (
    MAX_DATA,
    FloodGate,
    RetryingRequest,
    category_data,
    category_from_data,
    entry_from_ref,
    entry_ref,
    split_text,
    utf16_len,
)

URL = "http://127.0.0.1:9/bot123:secret/"


@given(
    st.text(alphabet=st.sampled_from(["a", "b", " ", "\n", "é", "😀", "."]), max_size=400),
    st.integers(min_value=8, max_value=60),
)
@settings(max_examples=300, deadline=None)
def test_split_text_keeps_every_word_and_the_limit(text: str, limit: int) -> None:
    """Pieces never exceed the limit (in UTF-16 units) and together hold the whole text, in order."""
    pieces = split_text(text, limit)
    assert all(0 < utf16_len(piece) <= limit for piece in pieces)
    assert "".join("".join(pieces).split()) == "".join(text.split())


def test_split_text_prefers_paragraphs_then_lines() -> None:
    """A cut falls between paragraphs when one is near, else between lines, else between words."""
    paragraphs = ["word " * 30, "more " * 30, "last " * 30]
    text = "\n\n".join(p.strip() for p in paragraphs)
    assert split_text(text, 200) == [p.strip() for p in paragraphs]
    assert split_text("one two three four", 9) == ["one two", "three", "four"]
    assert split_text("x" * 10, 4) == ["xxxx", "xxxx", "xx"]
    assert split_text("short", 4096) == ["short"]


def test_every_shipped_entry_fits_in_callback_data(tmp_path: Path) -> None:
    """Every button the bot can make carries at most 64 bytes and leads back to its own entry or category."""
    for brain in (shipped_brain(), fixture_brain(tmp_path)):
        for entry in brain.kb.entries:
            ref = entry_ref(brain, entry.id)
            for data in (f"a:{ref}", f"f:+:{ref}", f"f:-:{ref}"):
                assert len(data.encode("utf-8")) <= MAX_DATA, data
            assert entry_from_ref(brain, ref) == entry.id
        for index, name in enumerate(brain.kb.categories()):
            data = category_data(brain, index, name)
            assert len(data.encode("utf-8")) <= MAX_DATA
            assert category_from_data(brain, data) == name
        assert entry_from_ref(brain, "no-such-entry") is None
        assert entry_from_ref(brain, "#99999") is None


def test_flood_gate_notices_once_per_window() -> None:
    """Over the limit: one "notice", then "drop" until the window has passed; users are counted apart."""
    now = [0.0]
    gate = FloodGate(3, clock=lambda: now[0])
    assert [gate.check(1) for _ in range(6)] == ["ok", "ok", "ok", "notice", "drop", "drop"]
    assert gate.check(2) == "ok"
    now[0] = 60.0
    assert [gate.check(1) for _ in range(5)] == ["ok", "ok", "ok", "notice", "drop"]
    assert FloodGate(0).check(1) == "ok", "a limit of 0 turns the gate off"


def _request(handler: Callable[[httpx.Request], httpx.Response]) -> RetryingRequest:
    return RetryingRequest(
        backoff=0.001, attempts=4, httpx_kwargs={"transport": httpx.MockTransport(handler)}
    )


def _failing(
    error: Exception, then: int = 200, failures: int = 2
) -> tuple[list[int], Callable[..., httpx.Response]]:
    seen: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(1)
        if len(seen) <= failures:
            raise error
        return httpx.Response(then, json={"ok": True, "result": True})

    return seen, handler


@pytest.mark.parametrize("method", ["sendMessage", "answerCallbackQuery"])
@pytest.mark.parametrize(
    "error",
    [httpx.ConnectError("refused"), httpx.ConnectTimeout("slow connect"), httpx.PoolTimeout("pool full")],
)
async def test_requests_that_never_left_are_resent(method: str, error: Exception) -> None:
    """A request that provably never reached the server is resent, whatever the method."""
    seen, handler = _failing(error)
    request = _request(handler)
    await request.initialize()
    try:
        assert (await request.do_request(URL + method, "POST"))[0] == 200
    finally:
        await request.shutdown()
    assert len(seen) == 3


@pytest.mark.parametrize(
    ("error", "raised"),
    [(httpx.ReadTimeout("no answer"), TimedOut), (httpx.RemoteProtocolError("dropped"), NetworkError)],
)
async def test_an_uncertain_send_is_not_resent(error: Exception, raised: type[Exception]) -> None:
    """sendMessage that may have arrived is not resent (no double answers); answerCallbackQuery is."""
    seen, handler = _failing(error)
    request = _request(handler)
    await request.initialize()
    try:
        with pytest.raises(raised):
            await request.do_request(URL + "sendMessage", "POST")
        assert len(seen) == 1
        assert (await request.do_request(URL + "answerCallbackQuery", "POST"))[0] == 200
    finally:
        await request.shutdown()
    assert len(seen) == 3


@pytest.mark.parametrize(
    ("status", "resent"), [(500, True), (502, True), (503, True), (504, False), (400, False), (429, False)]
)
async def test_server_errors_are_resent_when_unprocessed(status: int, resent: bool) -> None:
    """500/502/503 mean the Bot API did not handle the message: resend. A 504 may have been handled; 4xx are
    final (429 is AIORateLimiter's to wait out)."""
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(status if len(calls) == 1 else 200, json={"ok": len(calls) > 1, "result": True})

    request = _request(handler)
    await request.initialize()
    try:
        code, _ = await request.do_request(URL + "sendMessage", "POST")
    finally:
        await request.shutdown()
    assert (code, len(calls)) == ((200, 2) if resent else (status, 1))


async def test_retries_give_up_after_the_last_attempt() -> None:
    """A server that never recovers gets a bounded number of attempts, then the error goes to the handler."""
    seen, handler = _failing(httpx.ConnectError("down"), failures=100)
    request = _request(handler)
    await request.initialize()
    try:
        with pytest.raises(NetworkError):
            await request.do_request(URL + "sendMessage", "POST")
    finally:
        await request.shutdown()
    assert len(seen) == 4
