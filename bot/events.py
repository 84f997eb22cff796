"""What front ends tell the analytics store about each reply and button press, through one small interface."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

EventKind = Literal["answer", "clarify", "fallback", "urgent", "chat", "feedback", "none_of_these"]


@dataclass(frozen=True, slots=True)
class Event:
    """One reply or button press. `message` is the patient's text: the store alone decides whether to keep it
    (scrubbed, and only for fallback and clarify replies); `user` is the raw id, which the store only keeps hashed."""

    kind: EventKind
    user: str
    entry: str | None = None
    score: float | None = None
    message: str | None = None
    helpful: bool | None = None


class Recorder(Protocol):
    def record(self, event: Event) -> None:
        """Keep the event; must never raise into a patient's reply."""

    def forget(self, user: str) -> int:
        """Delete every record of this user; returns how many were deleted."""


class NullRecorder:
    """Keeps nothing (storage disabled)."""

    def record(self, event: Event) -> None:
        return None

    def forget(self, user: str) -> int:
        return 0


class MemoryRecorder:
    """Keeps events in a list; for tests and for running without a store."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def record(self, event: Event) -> None:
        self.events.append(event)

    def forget(self, user: str) -> int:
        before = len(self.events)
        self.events = [e for e in self.events if e.user != user]
        return before - len(self.events)
