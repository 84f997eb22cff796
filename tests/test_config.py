"""The config file and environment become frozen Settings; mistakes get one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import BUNDLED_KNOWLEDGE, ConfigError, Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without config.yaml the bot runs on the bundled knowledge base and safe defaults."""
    monkeypatch.chdir(tmp_path)
    settings = load_settings(None, environ={})
    assert settings.knowledge_path == BUNDLED_KNOWLEDGE
    assert settings.telegram.token is None
    assert settings.source == "built-in defaults"


def test_example_config_is_valid_and_complete() -> None:
    """config.example.yaml loads, and documents the knowledge path, care team and thresholds."""
    settings = load_settings(ROOT / "config.example.yaml", environ={})
    assert settings.knowledge_path.resolve() == BUNDLED_KNOWLEDGE
    assert settings.care_team.phone == "01234 567890"
    assert settings.matching.answer >= settings.matching.clarify
    assert "cache_path" in (ROOT / "config.example.yaml").read_text(encoding="utf-8")


def test_environment_token_wins_and_is_never_shown(tmp_path: Path) -> None:
    """TELEGRAM_BOT_TOKEN wins over the config's token, and repr() never reveals either."""
    config = tmp_path / "c.yaml"
    config.write_text('telegram:\n  token: "from-file-123"\n')
    settings = load_settings(config, environ={"TELEGRAM_BOT_TOKEN": "from-env-456"})
    assert settings.telegram.token == "from-env-456"
    assert "from-env-456" not in repr(settings) and "from-file-123" not in repr(settings)
    assert load_settings(config, environ={}).telegram.token == "from-file-123"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("care_tem:\n  name: x\n", "did you mean 'care_team'"),
        ("care_team:\n  phone: 0123\n", "must be text"),
        ("care_team:\n  nmae: x\n", "did you mean 'name'"),
        ("matching:\n  answer_threshold: 0.3\n  clarify_threshold: 0.5\n", "thresholds"),
        ("telegram:\n  mode: carrier-pigeon\n", "polling"),
        ("storage:\n  enabled: maybe\n", "true or false"),
        ("care_team:\n\tname: x\n", "tabs"),
        ("care_team:\n  name: a\n  name: b\n", "appears twice"),
        ("knowledge:\n  cache_path: true\n", "knowledge.cache_path must be a folder, or off"),
        ("knowledge:\n  cache_path: 5\n", "'knowledge.cache_path' must be a folder (text in quotes) or off"),
        ("knowledge:\n  cache_paht: x\n", "did you mean 'cache_path'"),
    ],
)
def test_mistakes_are_explained(tmp_path: Path, text: str, needle: str) -> None:
    """Each mistake names the file and line and says what to change."""
    config = tmp_path / "config.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    assert needle in str(caught.value)
    assert str(config) in str(caught.value)


def test_missing_explicit_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_settings(tmp_path / "nope.yaml", environ={})


def test_relative_paths_are_read_from_the_config_folder(tmp_path: Path) -> None:
    config = tmp_path / "sub" / "config.yaml"
    config.parent.mkdir()
    config.write_text("knowledge:\n  path: kb\nstorage:\n  path: store.db\n")
    settings = load_settings(config, environ={"PORTBOT_HASH_KEY": "k"})
    assert settings.knowledge_path == config.parent / "kb"
    assert settings.storage.path == config.parent / "store.db"
    assert settings.storage.hash_key == "k"


@pytest.mark.parametrize(("text", "xdg", "expected"), [
    ("", "/xdg", "/xdg/portbot"),
    ("", None, "HOME/.cache/portbot"),
    ("", "relative/cache", "HOME/.cache/portbot"),  # the XDG rule: a relative XDG_CACHE_HOME is ignored
    ("knowledge:\n  cache_path:\n", "/xdg", "/xdg/portbot"),  # an empty setting is the default, as for every key
    ("knowledge:\n  cache_path: off\n", "/xdg", None),  # unquoted: YAML reads it as false
    ('knowledge:\n  cache_path: "off"\n', "/xdg", None),
    ('knowledge:\n  cache_path: " Off "\n', "/xdg", None),
    ('knowledge:\n  cache_path: ""\n', "/xdg", None),
    ("knowledge:\n  cache_path: false\n", "/xdg", None),
    ('knowledge:\n  cache_path: "prepared"\n', "/xdg", "CONFIG/prepared"),
    ('knowledge:\n  cache_path: "/var/cache/portbot"\n', "/xdg", "/var/cache/portbot"),
    ('knowledge:\n  cache_path: "~/pb"\n', "/xdg", "HOME/pb"),
])
def test_the_cache_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, xdg: str | None,
                        expected: str | None) -> None:
    """knowledge.cache_path: XDG_CACHE_HOME or ~/.cache by default, `off` for none, relative to the config file."""
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    if xdg is None:
        monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_CACHE_HOME", xdg)
    config = tmp_path / "config.yaml"
    config.write_text(text)
    found = load_settings(config, environ={}).cache_path
    want = None if expected is None else Path(expected.replace("HOME", str(home)).replace("CONFIG", str(tmp_path)))
    assert found == want


def test_settings_built_in_code_use_the_default_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Settings() made directly (as tests and tools do) looks at the environment when it is made."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert Settings().cache_path == tmp_path / "portbot"
