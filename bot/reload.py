"""Serve the last good knowledge base while staff edit it: notice changed files, validate the whole folder, and swap
in a new Brain only when it is free of errors."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bot.config import Settings
from bot.knowledge import KnowledgeError
from bot.prepared import load_prepared
from bot.replies import Brain, build_brain
from bot.yamlfile import Problem

log = logging.getLogger("portbot.reload")

# (path relative to the folder, size, mtime_ns, inode) of every YAML file; ("!", error) when a folder cannot be read.
Snapshot = tuple[tuple[str, int, int, int] | tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What one look at the knowledge folder found and did; `message` is worded for the admin who asked."""

    changed: bool  # the files differ from the last look (always true for a forced reload)
    reloaded: bool  # a new Brain is being served from now on
    problems: tuple[Problem, ...] = ()  # errors (which kept the old Brain) and warnings
    entries: int = 0  # entries in the Brain being served after this look
    message: str = ""

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")


class KnowledgeSource:
    """The current Brain, replaced as a whole when the knowledge folder changes and the new version is valid.

    `current()` is what front ends call for every message; `check()` and `reload()` may run in another thread."""

    def __init__(self, settings: Settings, on_error: Callable[[ReloadResult], None] | None = None,
                 brain: Brain | None = None) -> None:
        """Load the folder now (KnowledgeError if it has errors: there is no good version to fall back on yet)."""
        self.settings = settings
        self.path = Path(settings.knowledge_path)
        self.on_error = on_error
        self._lock = threading.Lock()  # one load at a time; readers never wait for it
        self._seen: Snapshot | None = snapshot(self.path)
        if brain is None:
            kb, index, problems = load_prepared(self.path, settings.cache_path)
            if kb is None:
                raise KnowledgeError(problems)
            brain = build_brain(kb, settings, index)
        self._brain = brain
        self._good: Snapshot | None = self._seen  # the files the served Brain was built from

    def current(self) -> Brain:
        """The Brain to answer with: no I/O, never blocks."""
        return self._brain

    def check(self) -> ReloadResult:
        """Look at the folder's files; if anything changed, load and validate the folder and swap in the result."""
        with self._lock:
            now = snapshot(self.path)
            if now == self._seen:
                return ReloadResult(False, False, entries=len(self._brain.kb.entries), message="no change")
            if now == self._good:
                # Back to exactly the files being served (a broken edit undone): nothing to load.
                self._seen = now
                return ReloadResult(True, False, entries=len(self._brain.kb.entries),
                                    message="the files are back to the version being served")
            return self._load(now)

    def reload(self) -> ReloadResult:
        """Load and validate the folder now, changed or not (the admin command /reload)."""
        with self._lock:
            return self._load(snapshot(self.path))

    def fresh(self) -> Brain:
        """check() then current(): for front ends that have no watcher, such as the console."""
        self.check()
        return self.current()

    def _load(self, before: Snapshot) -> ReloadResult:
        try:
            kb, index, problems = load_prepared(self.path, self.settings.cache_path)
            brain = build_brain(kb, self.settings, index) if kb is not None else None
        except Exception as error:  # a bug while loading must not stop the bot answering from the last good one
            log.exception("loading %s failed", self.path)
            kb, brain = None, None
            problems = [Problem(str(self.path), None, None, f"could not be loaded ({type(error).__name__})")]
        after = snapshot(self.path)
        if after != before:
            # Written to while we read it: whatever we read may be half old, half new. Look again next time.
            self._seen = None
            return ReloadResult(True, False, tuple(problems), len(self._brain.kb.entries),
                                "the knowledge folder changed while it was being read; it will be read again")
        self._seen = after
        if brain is None:
            errors = [p for p in problems if p.severity == "error"]
            for problem in errors:
                log.error("knowledge not reloaded: %s", problem)
            more = f" (and {len(errors) - 1} more; run `portbot validate`)" if len(errors) > 1 else ""
            first = str(errors[0]) if errors else "the knowledge base could not be loaded"
            result = ReloadResult(True, False, tuple(problems), len(self._brain.kb.entries),
                                  f"kept the previous version, because {first}{more}")
            if self.on_error is not None:
                try:
                    self.on_error(result)
                except Exception:
                    log.exception("the reload error callback failed")
            return result
        self._brain = brain  # one reference assignment: a message sees the old Brain or the new, never a mix
        self._good = after
        warnings = sum(p.severity == "warning" for p in problems)
        message = f"reloaded {len(brain.kb.entries)} entries from {self.path}" + (
            f" ({warnings} warning(s); run `portbot validate`)" if warnings else "")
        log.info("%s", message)
        return ReloadResult(True, True, tuple(problems), len(brain.kb.entries), message)


def snapshot(folder: Path) -> Snapshot:
    """Path, size, modification time and inode of every YAML file under `folder`: cheap to take and compare."""
    found: list[tuple[str, int, int, int] | tuple[str, str]] = []
    failures: list[OSError] = []
    for top, dirs, files in os.walk(folder, onerror=failures.append):
        dirs.sort()
        for name in sorted(files):
            if name.endswith((".yaml", ".yml")):
                path = os.path.join(top, name)
                try:
                    info = os.stat(path)
                except OSError as error:
                    failures.append(error)
                    continue
                found.append((os.path.relpath(path, folder), info.st_size, info.st_mtime_ns, info.st_ino))
    found += [("!", f"{error.filename}: {error.strerror}") for error in failures]
    return tuple(found)


async def watch(source: KnowledgeSource, interval: float | None = None) -> None:
    """Check the folder every `interval` seconds (default: knowledge.reload_seconds) until cancelled; loading runs
    in a worker thread so the event loop keeps answering meanwhile."""
    delay = source.settings.reload_seconds if interval is None else interval
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(delay)
        try:
            await loop.run_in_executor(None, source.check)
        except Exception:  # the watcher must outlive any one bad look at the folder
            log.exception("checking %s for changes failed", source.path)
