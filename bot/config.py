"""Read config.yaml and the environment into frozen Settings, with safe defaults when there is no file."""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.yamlfile import Node, YamlProblem, describe, read_yaml

DEFAULT_CONFIG = Path("config.yaml")
BUNDLED_KNOWLEDGE = Path(__file__).resolve().parent.parent / "knowledge"
TELEGRAM_API = "https://api.telegram.org/bot"
TOKEN_VARIABLE = "TELEGRAM_BOT_TOKEN"
HASH_KEY_VARIABLE = "PORTBOT_HASH_KEY"
CACHE_OFF = "off"


class ConfigError(Exception):
    """The config file cannot be used; the message says where and what to change."""


@dataclass(frozen=True, slots=True)
class CareTeam:
    name: str = "your care team"
    phone: str = "the number your clinic gave you"
    emergency_number: str = "112"
    crisis_line: str = "116 123, a free emotional support line in many European countries"


@dataclass(frozen=True, slots=True)
class Matching:
    """Score thresholds (0 to 1) that decide between answering, asking back and falling back."""

    answer: float = 0.4
    clarify: float = 0.4
    margin: float = 0.07
    max_candidates: int = 3


@dataclass(frozen=True, slots=True)
class Telegram:
    token: str | None = field(default=None, repr=False)
    base_url: str = TELEGRAM_API
    mode: str = "polling"
    listen: str = "127.0.0.1"
    port: int = 8443
    webhook_url: str | None = None
    secret_token: str | None = field(default=None, repr=False)
    admins: tuple[int, ...] = ()
    flood_limit: int = 20


@dataclass(frozen=True, slots=True)
class Storage:
    enabled: bool = True
    path: Path = Path("data/portbot.sqlite3")
    retention_days: int = 90
    keep_message_text: bool = True
    hash_key: str | None = field(default=None, repr=False)


def default_cache_path() -> Path | None:
    """$XDG_CACHE_HOME/portbot, else ~/.cache/portbot (None when there is no home folder): where this user's
    prepared knowledge is kept between runs."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):  # the XDG rule: a relative value is to be ignored
        return Path(xdg) / "portbot"
    try:
        return Path.home() / ".cache" / "portbot"
    except (RuntimeError, KeyError):
        return None


@dataclass(frozen=True, slots=True)
class Settings:
    knowledge_path: Path = BUNDLED_KNOWLEDGE
    care_team: CareTeam = CareTeam()
    matching: Matching = Matching()
    telegram: Telegram = Telegram()
    storage: Storage = Storage()
    review_max_age_days: int = 365
    reload_seconds: float = 2.0
    source: str = "built-in defaults"
    # Where the checked knowledge base and its index are kept between runs (see bot/prepared.py); None: nowhere.
    cache_path: Path | None = field(default_factory=default_cache_path)

    def placeholders(self) -> dict[str, str]:
        """The values that fill {care_team_name} and friends in staff-written texts."""
        team = self.care_team
        return {"care_team_name": team.name, "care_team_phone": team.phone,
                "emergency_number": team.emergency_number, "crisis_line": team.crisis_line,
                "retention_days": str(self.storage.retention_days)}


_M = Matching()

# section -> key -> (expected type, default); the single description of what a config file may hold.
_SCHEMA: dict[str, dict[str, tuple[type | tuple[type, ...], Any]]] = {
    "knowledge": {"path": (str, None), "review_max_age_days": (int, 365), "reload_seconds": ((int, float), 2.0),
                  "cache_path": ((str, bool), None)},
    "care_team": {k: (str, getattr(CareTeam(), k)) for k in ("name", "phone", "emergency_number", "crisis_line")},
    "matching": {"answer_threshold": ((int, float), _M.answer), "clarify_threshold": ((int, float), _M.clarify),
                 "margin": ((int, float), _M.margin), "max_candidates": (int, _M.max_candidates)},
    "telegram": {"token": (str, None), "base_url": (str, TELEGRAM_API), "mode": (str, "polling"),
                 "listen": (str, "127.0.0.1"), "port": (int, 8443), "webhook_url": (str, None),
                 "secret_token": (str, None), "admins": (list, []), "flood_limit_per_minute": (int, 20)},
    "storage": {"enabled": (bool, True), "path": (str, None), "retention_days": (int, 90),
                "keep_message_text": (bool, True), "hash_key": (str, None)},
}


_KINDS: dict[type | tuple[type, ...], str] = {
    str: "text (in quotes)", int: "a whole number", bool: "true or false", list: "a list",
    (str, bool): "a folder (text in quotes) or off"}


def load_settings(path: str | Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Settings from `path` (or ./config.yaml when present, else defaults), with the environment on top."""
    env = dict(os.environ if environ is None else environ)
    explicit = path is not None
    file = Path(path) if path is not None else DEFAULT_CONFIG
    if not file.exists():
        if explicit:
            raise ConfigError(f"{file}: no such config file (copy config.example.yaml to start one)")
        return _build({}, Path.cwd(), env, "built-in defaults")
    try:
        doc = read_yaml(file, str(file))
    except YamlProblem as error:
        raise ConfigError(str(error.problem)) from None
    if doc is None:
        doc = Node()
    if not isinstance(doc, dict):
        raise ConfigError(f"{file}:1: the config must be a block of sections like `care_team:`")
    return _build(_checked(doc, str(file)), file.resolve().parent, env, str(file))


def _checked(doc: dict[str, Any], shown: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for section, body in doc.items():
        line = doc.lines.get(section, 1) if isinstance(doc, Node) else 1
        if section not in _SCHEMA:
            close = difflib.get_close_matches(str(section), list(_SCHEMA), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else "; sections are " + ", ".join(_SCHEMA)
            raise ConfigError(f"{shown}:{line}: unknown section '{section}'{hint}")
        if body is None:
            continue
        if not isinstance(body, dict):
            raise ConfigError(f"{shown}:{line}: '{section}' must hold indented settings, not {describe(body)}")
        for key, value in body.items():
            kline = body.lines.get(key, line) if isinstance(body, Node) else line
            schema = _SCHEMA[section]
            if key not in schema:
                close = difflib.get_close_matches(str(key), list(schema), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else "; allowed: " + ", ".join(schema)
                raise ConfigError(f"{shown}:{kline}: unknown setting '{section}.{key}'{hint}")
            wanted, _ = schema[key]
            if value is None:
                continue
            allowed = wanted if isinstance(wanted, tuple) else (wanted,)
            if (isinstance(value, bool) and bool not in allowed) or not isinstance(value, allowed):
                name = _KINDS.get(wanted, "a number")
                raise ConfigError(f"{shown}:{kline}: '{section}.{key}' must be {name}, not {describe(value)}")
            out.setdefault(section, {})[key] = value
    return out


def _build(values: dict[str, dict[str, Any]], base: Path, env: dict[str, str], source: str) -> Settings:
    def get(section: str, key: str) -> Any:
        return values.get(section, {}).get(key, _SCHEMA[section][key][1])

    knowledge = get("knowledge", "path")
    knowledge_path = (base / knowledge) if knowledge else BUNDLED_KNOWLEDGE
    matching = Matching(float(get("matching", "answer_threshold")), float(get("matching", "clarify_threshold")),
                        float(get("matching", "margin")), int(get("matching", "max_candidates")))
    if not 0 < matching.clarify <= matching.answer <= 1:
        raise ConfigError(f"{source}: matching thresholds must satisfy 0 < clarify_threshold <= answer_threshold <= 1")
    admins = get("telegram", "admins")
    if not all(isinstance(a, int) and not isinstance(a, bool) for a in admins):
        raise ConfigError(f"{source}: telegram.admins must be a list of numeric Telegram user ids")
    mode = get("telegram", "mode")
    if mode not in ("polling", "webhook"):
        raise ConfigError(f"{source}: telegram.mode must be 'polling' or 'webhook', not '{mode}'")
    token = env.get(TOKEN_VARIABLE) or get("telegram", "token")
    telegram = Telegram(token or None, get("telegram", "base_url"), mode, get("telegram", "listen"),
                        get("telegram", "port"), get("telegram", "webhook_url"), get("telegram", "secret_token"),
                        tuple(admins), get("telegram", "flood_limit_per_minute"))
    store_path = get("storage", "path")
    storage = Storage(get("storage", "enabled"), (base / store_path) if store_path else base / Storage().path,
                      get("storage", "retention_days"), get("storage", "keep_message_text"),
                      env.get(HASH_KEY_VARIABLE) or get("storage", "hash_key"))
    team = CareTeam(**{k: get("care_team", k) for k in ("name", "phone", "emergency_number", "crisis_line")})
    return Settings(knowledge_path, team, matching, telegram, storage, get("knowledge", "review_max_age_days"),
                    float(get("knowledge", "reload_seconds")), source,
                    cache_path=_cache_path(get("knowledge", "cache_path"), base, source))


def _cache_path(value: str | bool | None, base: Path, source: str) -> Path | None:
    """knowledge.cache_path: unset is the default folder; off (unquoted, YAML reads it as false) or empty is none."""
    if value is None:
        return default_cache_path()
    if value is True:
        raise ConfigError(f"{source}: knowledge.cache_path must be a folder, or off to keep no prepared knowledge")
    if value is False or value.strip().lower() in ("", CACHE_OFF):
        return None
    return base / Path(value.strip()).expanduser()
