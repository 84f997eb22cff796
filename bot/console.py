"""Terminal front end: a chat on the shared pipeline, with input and output passed in so tests can drive it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TextIO

from bot.matching import Candidate, Decision
from bot.replies import Brain, Reply, answer_entry, respond

QUIT_WORDS = frozenset({"quit", "exit", "/quit", "/exit", ":q"})


def explain(reply: Reply) -> str:
    """The matcher's reasoning, for `--explain`: what it read, the candidates and why it chose this outcome."""
    lines = [f"  [kind={reply.kind} entry={reply.entry} score={reply.score}] {reply.reason}"]
    decision: Decision | None = reply.decision
    if decision is not None:
        lines.append("  tokens: " + " ".join(decision.tokens))
        if decision.repairs:
            lines.append("  typo repairs: " + ", ".join(f"{a}->{b}" for a, b in decision.repairs))
        if decision.unknown:
            lines.append("  words the knowledge base does not know: " + " ".join(decision.unknown))
        for candidate in decision.candidates:
            lines.append(f"  {candidate.score:.3f}  {candidate.entry:<24} via \"{candidate.phrasing}\"")
    return "\n".join(lines)


def run_console(brains: Brain | Callable[[], Brain], lines: Iterable[str], out: TextIO, interactive: bool,
                show_explain: bool = False) -> int:
    """Answer each line of `lines` on `out`; a number after a clarify reply picks that candidate.

    `brains` is a Brain, or a function giving the Brain to use for each message (so knowledge edits show up)."""
    if isinstance(brains, Brain):
        fixed = brains
        current: Callable[[], Brain] = lambda: fixed  # noqa: E731
    else:
        current = brains
    brain = current()
    if interactive:
        out.write(brain.texts["banner"] + "\n\n")
        out.write("> ")
        out.flush()
    offered: tuple[Candidate, ...] = ()
    for raw in lines:
        message = raw.rstrip("\n")
        if message.strip().casefold() in QUIT_WORDS:
            break
        brain = current()
        choice = message.strip()
        picked = None
        if offered and choice.isdigit() and 1 <= int(choice) <= len(offered):
            picked = answer_entry(brain, offered[int(choice) - 1].entry)
        reply = picked or respond(brain, message)
        offered = reply.candidates if reply.kind == "clarify" else ()
        out.write(reply.text + "\n")
        if reply.related:
            out.write("Related: " + " | ".join(question for _, question in reply.related) + "\n")
        if show_explain:
            out.write(explain(reply) + "\n")
        out.write("\n")
        if interactive:
            out.write("> ")
        out.flush()
    if interactive:
        out.write("\n")
    return 0
