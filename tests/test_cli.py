"""The command line: the `ask --json` contract, streaming, console, validate and eval, and no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.cli import main
from bot.replies import Brain, respond

ROOT = Path(__file__).resolve().parent.parent
KINDS = {"answer", "clarify", "fallback", "urgent", "chat"}


def _ask_json(capsys: pytest.CaptureFixture[str], message: str) -> dict[str, object]:
    assert main(["ask", "--json", message]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_contract(capsys: pytest.CaptureFixture[str]) -> None:
    """An answer carries kind, the full text with the care-team reminder, entry, score and candidates."""
    reply = _ask_json(capsys, "can I swim with my port?")
    assert set(reply) == {"kind", "text", "entry", "score", "candidates"}
    assert reply["kind"] == "answer" and reply["entry"] == "everyday-activities"
    assert "swim" in str(reply["text"]).lower() and "care team" in str(reply["text"]).lower()
    assert isinstance(reply["score"], float) and 0 < reply["score"] <= 1
    first = reply["candidates"][0]  # type: ignore[index]
    assert set(first) == {"entry", "question", "score"} and first["entry"] == "everyday-activities"


def test_fallback_names_the_care_team(capsys: pytest.CaptureFixture[str]) -> None:
    reply = _ask_json(capsys, "what time does the pharmacy open")
    assert reply["kind"] == "fallback" and reply["entry"] is None
    assert "care team" in str(reply["text"]).lower()


def test_stdin_stream_answers_each_line_as_it_arrives() -> None:
    """`ask --json -` writes and flushes one object per line before the next line is even sent."""
    proc = subprocess.Popen([sys.executable, "-m", "bot", "ask", "--json", "-"], cwd=ROOT, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin and proc.stdout
    try:
        for message in ("hello", "can i go swimming", "", "what is a pneumothorax"):
            proc.stdin.write(message + "\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
            assert json.loads(line)["kind"] in KINDS
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream:
                stream.close()


def test_plain_ask(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "how", "much", "does", "a", "port", "cost"]) == 0
    assert "expensive" in capsys.readouterr().out.lower()


def test_console_with_piped_input(brain: Brain) -> None:
    """The console answers one message a line, and a number after "did you mean" picks that question."""
    import io

    from bot.console import run_console

    out = io.StringIO()
    run_console(brain, ["hello\n", "can i go swimming\n", "quit\n", "never read\n"], out, interactive=False)
    text = out.getvalue()
    assert "swim" in text.lower() and "never read" not in text


def test_console_banner_discloses_automation(brain: Brain) -> None:
    import io

    from bot.console import run_console

    out = io.StringIO()
    run_console(brain, [], out, interactive=True)
    banner = out.getvalue().lower()
    assert "automated" in banner and "not a person" in banner
    assert brain.settings.care_team.emergency_number in banner


def test_validate_exit_codes(kb_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(kb_copy)]) == 0
    (kb_copy / "faq" / "about.yaml").write_text("entries:\n  - id: x\n\tquestion: y\n")
    assert main(["validate", str(kb_copy)]) == 1
    out = capsys.readouterr().out
    assert "about.yaml:3" in out and "tabs" in out


def test_invalid_knowledge_is_one_line_not_a_traceback(tmp_path: Path, kb_copy: Path) -> None:
    (kb_copy / "texts.yaml").write_text("texts: [oops\n")
    config = tmp_path / "c.yaml"
    config.write_text(f"knowledge:\n  path: {kb_copy}\n")
    proc = subprocess.run([sys.executable, "-m", "bot", "ask", "--config", str(config), "hello"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "texts.yaml" in proc.stderr


def test_eval_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`portbot eval` prints a table and exits 1 when a case fails."""
    cases = tmp_path / "cases.yaml"
    cases.write_text('- {q: "can i swim", expect: answer, entry: everyday-activities}\n'
                     '- {q: "can i swim", expect: fallback}\n')
    assert main(["eval", str(cases)]) == 1
    out = capsys.readouterr().out
    assert "ok" in out and "FAIL" in out and "1 of 2 passed" in out


ODD = [
    "x" * 100_000,
    "port " * 20_000,
    "\x00\x01\x02\x1b[31m can i swim \x7f",
    "\u202eمرحبا هل يمكنني السباحة\u202c",  # noqa: RUF001 - right-to-left text on purpose
    "можно ли плавать с портом?",  # noqa: RUF001 - Cyrillic on purpose
    "can I 游泳 with my port",
    "\ud83d\ude00" * 50,
    "\n\n\n",
    "🙂",
]


@pytest.mark.parametrize("message", ODD, ids=range(len(ODD)))
def test_odd_input_gets_a_reply(brain: Brain, message: str) -> None:
    reply = respond(brain, message)
    assert reply.kind in KINDS and reply.text


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_any_text_gets_a_reply(brain: Brain, message: str) -> None:
    """Whatever arrives, the pipeline returns a reply with text; it never raises."""
    reply = respond(brain, message)
    assert reply.kind in KINDS and reply.text
    json.dumps(reply.as_json())
