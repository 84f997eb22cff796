"""Shared fixtures: the shipped knowledge base loaded once, a writable copy for tests that break it, and a cache folder
of the test session's own."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from botapi_double import BotApiDouble

from bot.config import BUNDLED_KNOWLEDGE, Settings, load_settings
from bot.knowledge import KnowledgeBase, load_knowledge
from bot.replies import Brain, build_brain

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def cache_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Prepared knowledge goes to a folder of this session's, for the tests and the commands they start alike:
    never to the real ~/.cache. Session-wide and first, so that session fixtures building Settings see it too."""
    folder = tmp_path_factory.mktemp("xdg-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(folder))
        yield folder


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings(None, environ={})


@pytest.fixture(scope="session")
def kb() -> KnowledgeBase:
    return load_knowledge(BUNDLED_KNOWLEDGE)


@pytest.fixture(scope="session")
def brain(kb: KnowledgeBase, settings: Settings) -> Brain:
    return build_brain(kb, settings)


@pytest.fixture
def kb_copy(tmp_path: Path) -> Path:
    """A writable copy of the shipped knowledge folder."""
    target = tmp_path / "knowledge"
    shutil.copytree(BUNDLED_KNOWLEDGE, target)
    return target


@pytest.fixture
async def api() -> AsyncIterator[BotApiDouble]:
    """A Bot API double on 127.0.0.1 for one test, stopped after it."""
    async with BotApiDouble() as double:
        yield double
