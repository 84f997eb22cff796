"""Read the staff-owned knowledge folder into a frozen KnowledgeBase, naming file, line and entry for every problem."""

from __future__ import annotations

import datetime as dt
import difflib
import re
import string
from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from bot import safety
from bot.yamlfile import Node, Problem, Seq, YamlProblem, describe, read_yaml

ENTRY_KEYS = ("id", "question", "phrasings", "answer", "category", "source", "reviewed", "related", "warning_signs")
REQUIRED_ENTRY_KEYS = ("id", "question", "phrasings", "answer", "category", "source", "reviewed")
MIN_PHRASINGS = 8
PLACEHOLDERS = frozenset({"care_team_name", "care_team_phone", "emergency_number", "crisis_line", "retention_days"})
REQUIRED_TEXTS = (
    "care_team_reminder", "not_covered", "clarify_prompt", "clarify_hint", "none_of_these",
    "warning_signs", "banner", "empty_message", "urgent", "crisis",
)
SMALLTALK_KEYS = ("intent", "patterns", "reply")
GAP_KEYS = ("topic", "phrasings")
_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


@dataclass(frozen=True, slots=True)
class Entry:
    """One question-and-answer entry, as staff wrote it."""

    id: str
    question: str
    phrasings: tuple[str, ...]
    answer: str
    category: str
    source: str
    reviewed: dt.date
    related: tuple[str, ...] = ()
    warning_signs: bool = False
    file: str = ""
    line: int = 0
    # One line number per phrasing, as a compact array: a guide of 10 000 entries has 300 000 of them.
    phrasing_lines: Sequence[int] = field(default=(), hash=False)


@dataclass(frozen=True, slots=True)
class SmallTalk:
    """A small-talk intent: whole short messages that get a friendly fixed reply."""

    intent: str
    patterns: tuple[str, ...]
    reply: str


@dataclass(frozen=True, slots=True)
class Gap:
    """A topic patients ask about that the guide does not cover; matching it means "not covered"."""

    topic: str
    phrasings: tuple[str, ...]
    file: str = ""
    line: int = 0


@dataclass(frozen=True, slots=True)
class KnowledgeBase:
    """Everything the bot says and matches on, loaded from the knowledge folder."""

    entries: tuple[Entry, ...]
    synonyms: tuple[tuple[str, tuple[str, ...]], ...]
    smalltalk: tuple[SmallTalk, ...]
    texts: Mapping[str, str]
    safety: safety.SafetyRules
    root: str = ""
    by_id: Mapping[str, Entry] = field(default_factory=dict, compare=False)
    gaps: tuple[Gap, ...] = ()

    def entry(self, entry_id: str) -> Entry | None:
        return self.by_id.get(entry_id)

    def categories(self) -> tuple[str, ...]:
        """Categories in the order they first appear."""
        return tuple(dict.fromkeys(entry.category for entry in self.entries))


class KnowledgeError(Exception):
    """The knowledge folder has errors; `problems` lists each one for the member of staff."""

    def __init__(self, problems: list[Problem]) -> None:
        errors = [p for p in problems if p.severity == "error"]
        first = str(errors[0]) if errors else "problems"
        more = f" (and {len(errors) - 1} more; run `portbot validate` to see them all)" if len(errors) > 1 else ""
        super().__init__(first + more)
        self.problems = problems


def load_knowledge(path: Path | str) -> KnowledgeBase:
    """The knowledge base in `path`, or KnowledgeError when it has errors (warnings do not stop it)."""
    kb, problems = check_knowledge(path)
    if kb is None:
        raise KnowledgeError(problems)
    return kb


def check_knowledge(path: Path | str) -> tuple[KnowledgeBase | None, list[Problem]]:
    """Parse and check the whole folder; the knowledge base is None when any problem is an error."""
    reader = _Reader(Path(path))
    kb = reader.read()
    errors = any(p.severity == "error" for p in reader.problems)
    return (None if errors else kb), reader.problems


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _suggest(key: object, known: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(str(key), known, n=1)
    return f"did you mean '{close[0]}'?" if close else "allowed keys are: " + ", ".join(known)


class _Reader:
    """Collects problems while turning the folder's YAML into frozen values."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.problems: list[Problem] = []

    def problem(self, file: str, line: int | None, entry: str | None, message: str, severity: str = "error") -> None:
        self.problems.append(Problem(file, line, entry, message, severity))

    def document(self, path: Path, top_key: str, kind: type) -> tuple[str, Any]:
        shown = _shown(path)
        try:
            doc = read_yaml(path, shown)
        except YamlProblem as error:
            self.problems.append(error.problem)
            return shown, None
        if not isinstance(doc, Node) or top_key not in doc:
            self.problem(shown, 1, None, f"must start with the line `{top_key}:` followed by its contents")
            return shown, None
        for key in doc:
            if key != top_key:
                self.problem(shown, doc.lines[key], None,
                             f"unknown top-level key '{key}'; only `{top_key}:` belongs here")
        value = doc[top_key]
        if not isinstance(value, kind):
            wanted = "a list" if kind is Seq else "a block of keys"
            self.problem(shown, doc.lines[top_key], None, f"`{top_key}:` must hold {wanted}, not {describe(value)}")
            return shown, None
        return shown, value

    def read(self) -> KnowledgeBase | None:
        if not self.root.is_dir():
            self.problem(_shown(self.root), None, None, "is not a folder; set knowledge.path to the knowledge folder")
            return None
        entries = self.read_entries()
        synonyms = self.read_synonyms()
        smalltalk = self.read_smalltalk()
        texts = self.read_texts()
        rules = self.read_safety()
        gaps = self.read_gaps()
        known = {"faq", "synonyms.yaml", "smalltalk.yaml", "texts.yaml", "safety.yaml", "tests.yaml", "gaps.yaml"}
        for path in sorted(self.root.iterdir()):
            if path.suffix in (".yaml", ".yml") and path.name not in known:
                self.problem(_shown(path), None, None, "is not used by the bot; FAQ entries belong in the faq/ folder",
                             "warning")
        if rules is None:
            return None
        by_id = MappingProxyType({entry.id: entry for entry in entries})
        self.check_related(entries, by_id)
        return KnowledgeBase(tuple(entries), synonyms, smalltalk, MappingProxyType(texts), rules,
                             str(self.root), by_id, gaps)

    # -- FAQ entries ---------------------------------------------------------------------------------------------

    def read_entries(self) -> list[Entry]:
        folder = self.root / "faq"
        files = sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml")) if folder.is_dir() else []
        if not files:
            self.problem(_shown(folder), None, None, "holds no .yaml files; the bot needs at least one FAQ entry")
        entries: list[Entry] = []
        seen: dict[str, str] = {}
        for path in files:
            shown, items = self.document(path, "entries", Seq)
            if items is None:
                continue
            for item, line in zip(items, items.lines, strict=True):
                entry = self.read_entry(shown, line, item)
                if entry is None:
                    continue
                if entry.id in seen:
                    self.problem(shown, line, entry.id, f"the id '{entry.id}' is already used at {seen[entry.id]}; "
                                 "give each entry its own id")
                    continue
                seen[entry.id] = f"{shown}:{line}"
                entries.append(entry)
        return entries

    def read_entry(self, shown: str, line: int, item: object) -> Entry | None:
        if not isinstance(item, Node):
            self.problem(shown, line, None, f"each item under `entries:` must be a block of keys, not {describe(item)}")
            return None
        entry_id = item.get("id") if isinstance(item.get("id"), str) else None
        report: Callable[..., None] = lambda key, msg, sev="error": self.problem(  # noqa: E731
            shown, item.lines.get(key, item.line), entry_id, msg, sev)
        for key in item:
            if key not in ENTRY_KEYS:
                report(key, f"unknown key '{key}'; {_suggest(key, ENTRY_KEYS)}")
        missing = [key for key in REQUIRED_ENTRY_KEYS if key not in item]
        for key in missing:
            report(None, f"is missing `{key}:`")
        if missing:
            return None
        text = {key: self.text(item, key, report) for key in ("id", "question", "answer", "category", "source")}
        if text["id"] is not None and not _ID.match(text["id"]):
            report("id", f"the id '{text['id']}' must be lower-case words joined by hyphens, like 'can-i-swim'")
            text["id"] = None
        phrasings = self.texts_list(item, "phrasings", report)
        related = self.texts_list(item, "related", report) if "related" in item else ()
        reviewed = self.date(item, report)
        warning = item.get("warning_signs", False)
        if not isinstance(warning, bool):
            report("warning_signs", f"`warning_signs:` must be true or false, not {describe(warning)}")
        if phrasings is not None and len(phrasings) < MIN_PHRASINGS:
            report("phrasings", f"has {len(phrasings)} phrasings; add at least {MIN_PHRASINGS} ways patients ask this",
                   "warning")
        if phrasings is not None:
            for phrase, count in _repeats(p.casefold().strip() for p in phrasings):
                report("phrasings", f"the phrasing '{phrase}' is listed {count} times", "warning")
        values = {key: value for key, value in text.items() if value is not None}
        if len(values) < len(text) or phrasings is None or related is None or reviewed is None:
            return None
        if not isinstance(warning, bool):
            return None
        lines = item["phrasings"].lines if isinstance(item["phrasings"], Seq) else []
        return Entry(values["id"], values["question"], phrasings, values["answer"], values["category"],
                     values["source"], reviewed, related, warning, shown, item.line, array("I", lines))

    def text(self, item: Node, key: str, report: Callable[..., None]) -> str | None:
        value = item[key]
        if isinstance(value, str) and value.strip():
            return " ".join(value.split()) if key != "answer" else value.strip()
        if isinstance(value, str) or value is None:
            report(key, f"`{key}:` is empty; write the {key}")
        else:
            raw = item.raw.get(key, "")
            report(key, f"`{key}:` must be text, but YAML read '{raw}' as {describe(value)}; put it in quotes")
        return None

    def texts_list(self, item: Node, key: str, report: Callable[..., None]) -> tuple[str, ...] | None:
        value = item[key]
        if not isinstance(value, list):
            report(key, f"`{key}:` must be a list (one '- ' line per item), not {describe(value)}")
            return None
        if all(isinstance(element, str) for element in value):  # the usual case: nothing to report below
            tidy = tuple(" ".join(element.split()) for element in value)
            if all(tidy):
                return tidy
        out: list[str] = []
        for index, element in enumerate(value):
            if not isinstance(element, str) or not element.strip():
                what = "empty" if isinstance(element, str) or element is None else describe(element)
                line = value.lines[index] if isinstance(value, Seq) else None
                report(key, f"item {index + 1} of `{key}:` (line {line}) is {what}; "
                       "write it as text, in quotes if needed")
                return None
            out.append(" ".join(element.split()))
        return tuple(out)

    def date(self, item: Node, report: Callable[..., None]) -> dt.date | None:
        value = item["reviewed"]
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value.strip())
            except ValueError:
                pass
        report("reviewed", f"`reviewed:` must be the date of the last review, written like 2026-11-28, "
               f"not '{item.raw.get('reviewed', value)}'")
        return None

    def check_related(self, entries: list[Entry], by_id: Mapping[str, Entry]) -> None:
        for entry in entries:
            for other in entry.related:
                if other == entry.id:
                    self.problem(entry.file, entry.line, entry.id, "lists itself under `related:`")
                elif other not in by_id:
                    close = difflib.get_close_matches(other, list(by_id), n=1)
                    hint = f"; did you mean '{close[0]}'?" if close else ""
                    self.problem(entry.file, entry.line, entry.id,
                                 f"`related:` names '{other}', which is no entry's id{hint}")

    # -- synonyms, small talk, texts, safety ----------------------------------------------------------------------

    def read_synonyms(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        path = self.root / "synonyms.yaml"
        if not path.exists():
            return ()
        shown, table = self.document(path, "synonyms", Node)
        if table is None:
            return ()
        out: list[tuple[str, tuple[str, ...]]] = []
        owner: dict[str, str] = {}
        for canonical, variants in table.items():
            line = table.lines[canonical]
            if not isinstance(canonical, str) or not canonical.strip():
                self.problem(shown, line, None, f"the key {describe(canonical)} must be a word; put it in quotes")
                continue
            if not isinstance(variants, list) or not all(isinstance(v, str) and v.strip() for v in variants):
                self.problem(shown, line, None, f"'{canonical}' must hold a list of words or phrases, "
                             "each written as text (in quotes if it is a number or yes/no)")
                continue
            for variant in variants:
                folded = " ".join(variant.casefold().split())
                if folded in owner and owner[folded] != canonical:
                    self.problem(shown, line, None, f"'{variant}' is listed under both '{owner[folded]}' and "
                                 f"'{canonical}'; keep it under one")
                owner[folded] = canonical
            out.append((canonical, tuple(variants)))
        return tuple(out)

    def blocks(self, file_name: str, top_key: str, keys: tuple[str, ...],
               needs: str) -> Iterator[tuple[str, Node, int, Callable[..., None]]]:
        """Each well-formed block of an optional list file, with a problem reporter naming its line and name."""
        path = self.root / file_name
        if not path.exists():
            return
        shown, items = self.document(path, top_key, Seq)
        if items is None:
            return
        for item, line in zip(items, items.lines, strict=True):
            if not isinstance(item, Node):
                self.problem(shown, line, None, f"each item must be a block with {needs}")
                continue
            name = item.get(keys[0]) if isinstance(item.get(keys[0]), str) else None
            report: Callable[..., None] = lambda key, msg, sev="error", n=name, i=item: self.problem(  # noqa: E731
                shown, i.lines.get(key, i.line), n, msg, sev)
            for key in item:
                if key not in keys:
                    report(key, f"unknown key '{key}'; {_suggest(key, keys)}")
            if any(key not in item for key in keys):
                report(None, f"needs {needs}")
                continue
            yield shown, item, line, report

    def read_smalltalk(self) -> tuple[SmallTalk, ...]:
        out: list[SmallTalk] = []
        for shown, item, _, report in self.blocks("smalltalk.yaml", "smalltalk", SMALLTALK_KEYS,
                                                   "`intent:`, `patterns:` and `reply:`"):
            patterns = self.texts_list(item, "patterns", report)
            reply = self.text(item, "reply", report)
            intent = self.text(item, "intent", report)
            if patterns is not None and reply is not None and intent is not None:
                self.check_placeholders(shown, item.lines["reply"], intent, reply)
                out.append(SmallTalk(intent, patterns, reply))
        return tuple(out)

    def read_gaps(self) -> tuple[Gap, ...]:
        out: list[Gap] = []
        for shown, item, line, report in self.blocks("gaps.yaml", "gaps", GAP_KEYS, "`topic:` and `phrasings:`"):
            topic = self.text(item, "topic", report)
            phrasings = self.texts_list(item, "phrasings", report)
            if topic is not None and phrasings is not None:
                out.append(Gap(topic, phrasings, shown, line))
        return tuple(out)

    def read_texts(self) -> dict[str, str]:
        path = self.root / "texts.yaml"
        if not path.exists():
            self.problem(_shown(path), None, None, "is missing; it holds the bot's fixed replies")
            return {}
        shown, table = self.document(path, "texts", Node)
        if table is None:
            return {}
        texts: dict[str, str] = {}
        for name, value in table.items():
            line = table.lines[name]
            if not isinstance(value, str) or not value.strip():
                what = "empty" if isinstance(value, str) or value is None else describe(value)
                self.problem(shown, line, str(name),
                             f"the text '{name}' is {what}; write the text (in quotes if needed)")
                continue
            if name not in REQUIRED_TEXTS:
                known = REQUIRED_TEXTS + tuple(_OPTIONAL_TEXTS)
                if name not in known:
                    self.problem(shown, line, str(name),
                                 f"'{name}' is not a text the bot uses; {_suggest(name, known)}", "warning")
            self.check_placeholders(shown, line, str(name), value)
            texts[str(name)] = value.strip()
        for name in REQUIRED_TEXTS:
            if name not in table:
                self.problem(shown, table.line, None, f"the text '{name}' is missing; add `{name}:` with its wording")
        return texts

    def check_placeholders(self, shown: str, line: int, name: str, text: str) -> None:
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
        except ValueError:
            self.problem(shown, line, name, "has a stray { or }; write {{ or }} for a literal brace")
            return
        for name_used in fields:
            if name_used not in PLACEHOLDERS:
                self.problem(shown, line, name, f"uses the placeholder {{{name_used}}}; known placeholders are "
                             + ", ".join("{" + p + "}" for p in sorted(PLACEHOLDERS)))

    def read_safety(self) -> safety.SafetyRules | None:
        path = self.root / "safety.yaml"
        if not path.exists():
            self.problem(_shown(path), None, None, "is missing; the bot will not run without its safety vocabulary")
            return None
        shown = _shown(path)
        try:
            doc = read_yaml(path, shown)
        except YamlProblem as error:
            self.problems.append(error.problem)
            return None
        try:
            return safety.parse_rules(doc)
        except safety.SafetyFormatError as error:
            self.problem(shown, _line_of(doc, error.key_path), error.key_path or None, str(error))
            return None


_OPTIONAL_TEXTS = ("help", "start", "privacy", "non_text", "slow_down", "error", "not_allowed", "forgotten",
                   "feedback_thanks", "topics_prompt", "reloaded", "reload_failed", "privacy_off")


def _line_of(doc: Any, key_path: str) -> int | None:
    """The line of a dotted key path like 'symptoms.fever.terms', as deep as it can be followed."""
    line = doc.line if isinstance(doc, Node | Seq) else None
    node = doc
    for part in key_path.split(".") if key_path else ():
        if isinstance(node, Node) and part in node:
            line = node.lines.get(part, line)
            node = node[part]
        elif isinstance(node, Seq) and part.isdigit() and int(part) < len(node):
            line = node.lines[int(part)]
            node = node[int(part)]
        else:
            break
    return line


def _repeats(items: Iterator[str] | Any) -> list[tuple[str, int]]:
    return [(item, count) for item, count in Counter(items).items() if count > 1]
