"""Read one staff-edited YAML file, keeping line numbers and refusing the traps that silently change meaning."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the knowledge base, worded for the member of staff who has to fix it."""

    file: str
    line: int | None
    entry: str | None
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line else "")
        who = f" [{self.entry}]" if self.entry else ""
        return f"{where}:{who} {self.severity}: {self.message}"


class YamlProblem(Exception):
    """A file that is not valid YAML, or holds a duplicate key."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


class Node(dict[Any, Any]):
    """A YAML mapping that remembers its own line and the line of each value."""

    line: int = 0
    lines: dict[Any, int]
    raw: dict[Any, str]


class Seq(list[Any]):
    """A YAML list that remembers the line of each item."""

    line: int = 0
    lines: list[int]


class _Loader(yaml.SafeLoader):  # type: ignore[misc]
    """The pure-Python loader: the reference for what a file means, and the one whose error messages staff see."""


def _duplicate(key: Any, first_line: int, mark: Any) -> yaml.constructor.ConstructorError:
    return yaml.constructor.ConstructorError(
        None, None,
        f"the key '{key}' appears twice in the same block (first on line {first_line}); "
        "YAML would silently keep only the last one, so delete or rename one of them",
        mark,
    )


def _mapping(loader: _Loader, node: yaml.MappingNode) -> Node:
    loader.flatten_mapping(node)
    result = Node()
    result.line = node.start_mark.line + 1
    result.lines = {}
    result.raw = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in result:
            raise _duplicate(key, result.lines[key], key_node.start_mark)
        result[key] = loader.construct_object(value_node, deep=True)
        result.lines[key] = line
        if isinstance(value_node, yaml.ScalarNode):
            result.raw[key] = value_node.value
    return result


def _sequence(loader: _Loader, node: yaml.SequenceNode) -> Seq:
    result = Seq(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.lines = [child.start_mark.line + 1 for child in node.value]
    return result


_MAP = yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG
_SEQ = yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG
_STR = yaml.resolver.BaseResolver.DEFAULT_SCALAR_TAG
_Loader.add_constructor(_MAP, _mapping)
_Loader.add_constructor(_SEQ, _sequence)

# libyaml, PyYAML's C parser, reads a file ten times faster than the pure-Python loader; PyYAML may lack it.
_CSafeLoader: Any = getattr(yaml, "CSafeLoader", None)
# First characters of an unquoted value that YAML may read as something other than text (number, date, yes/no...).
_TYPED_STARTS = frozenset(yaml.SafeLoader.yaml_implicit_resolvers)


class _Shared(Exception):
    """The document reuses a block through a YAML alias: leave it to PyYAML's own constructors."""


class _Unsure(Exception):
    """libyaml read something that the pure-Python loader reads differently or refuses."""


if _CSafeLoader is not None:

    class _FastLoader(_CSafeLoader):  # type: ignore[misc]
        """libyaml parses; values come out exactly as _Loader makes them."""

        def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
            # The same answer as PyYAML's resolver, sooner, for the bulk of a knowledge file: quoted values, and
            # unquoted ones whose first character starts no number, date, yes/no or null.
            if kind is yaml.ScalarNode and not self.yaml_path_resolvers and None not in _TYPED_STARTS and (
                    not implicit[0] or (value and value[0] not in _TYPED_STARTS)):
                return _STR
            return super().resolve(kind, value, implicit)

    _FastLoader.add_constructor(_MAP, _mapping)
    _FastLoader.add_constructor(_SEQ, _sequence)


class _Builder:
    """Turns libyaml's node tree into the values _Loader makes (Node, Seq, text...), without PyYAML's generic
    constructor machinery, which takes longer than the parsing itself."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self.seen: set[int] = set()

    def value(self, node: Any) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return node.value if node.tag == _STR else self.loader.construct_object(node, deep=True)
        if node.tag == _MAP:
            return self.mapping(node)
        if node.tag == _SEQ:
            return self.sequence(node)
        return self.loader.construct_object(node, deep=True)  # !!set, !!omap and the like

    def enter(self, node: Any, children: list[Any]) -> None:
        if id(node) in self.seen:  # an alias: a block used twice (or inside itself), where identity matters
            raise _Shared
        self.seen.add(id(node))
        # Unquoted text holding '?' inside [...] or {...}: libyaml reads it as text, _Loader refuses it.
        if node.flow_style and any(isinstance(c, yaml.ScalarNode) and not c.style and "?" in c.value
                                   for c in children):
            raise _Unsure

    def mapping(self, node: yaml.MappingNode) -> Node:
        self.loader.flatten_mapping(node)
        self.enter(node, [part for pair in node.value for part in pair])
        result = Node()
        result.line = node.start_mark.line + 1
        result.lines = {}
        result.raw = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise _Shared  # a block used as a key: let PyYAML's constructors deal with it
            key = self.value(key_node)
            if key in result:
                raise _duplicate(key, result.lines[key], key_node.start_mark)
            result[key] = self.value(value_node)
            result.lines[key] = key_node.start_mark.line + 1
            if isinstance(value_node, yaml.ScalarNode):
                result.raw[key] = value_node.value
        return result

    def sequence(self, node: yaml.SequenceNode) -> Seq:
        self.enter(node, node.value)
        result = Seq([self.value(child) for child in node.value])
        result.line = node.start_mark.line + 1
        result.lines = [child.start_mark.line + 1 for child in node.value]
        return result


def _fast_load(text: str) -> Any:
    """The document as _Loader reads it, parsed by libyaml."""
    loader = _FastLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        try:
            return _Builder(loader).value(node)
        except _Shared:
            return loader.construct_document(node)
    finally:
        loader.dispose()


# Where libyaml and the pure-Python loader may part ways: tabs, a comment straight after the | or > of a block of
# text, and explicit tags (!something, !!type). (And '?' in unquoted text inside [...] or {...}: see
# _Builder.enter.) Files holding them are rare, and read by the pure-Python loader.
_BLOCK_COMMENT = re.compile(r"[|>][-+0-9]*#")
_TAG = re.compile(r"(?:^ *|[-:?] +|[\[{,] *|&\S+ +)!", re.MULTILINE)  # a "!" where a value can start


def _lenient(text: str) -> bool:
    return "\t" in text or ("#" in text and _BLOCK_COMMENT.search(text) is not None) or (
        "!" in text and _TAG.search(text) is not None)


def _load(text: str) -> Any:
    # A file that may use what libyaml alone accepts is read by the pure-Python loader, so that every file means
    # the same, or is refused with the same message, whichever loader reads it.
    if _CSafeLoader is not None and not _lenient(text):
        try:
            return _fast_load(text)
        except (yaml.YAMLError, _Unsure):
            pass  # libyaml words its errors its own way: let the pure-Python loader find and describe the problem
    return yaml.load(text, Loader=_Loader)  # _Loader derives from SafeLoader


def read_yaml(path: Path, shown_as: str) -> Any:
    """The document in `path`, or YamlProblem naming the file, the line and what to do."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise YamlProblem(Problem(shown_as, None, None, "is not UTF-8 text; save it as UTF-8")) from None
    except OSError as error:
        raise YamlProblem(Problem(shown_as, None, None, f"cannot be read ({error.strerror})")) from None
    try:
        return _load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else None
        what = error.problem or error.context or "is not valid YAML"
        hint = ""
        if "\t" in what or "\\t" in what or "tab" in what:
            hint = "; YAML does not allow tabs for indenting: use spaces"
        elif "mapping values are not allowed" in what:
            hint = "; a text containing ': ' must be put in quotes"
        elif "could not find expected ':'" in what or "expected <block end>" in what:
            hint = "; check the indentation of this line and the one above"
        raise YamlProblem(Problem(shown_as, line, None, f"YAML syntax error: {what}{hint}")) from None
    except yaml.YAMLError as error:
        raise YamlProblem(Problem(shown_as, None, None, f"YAML syntax error: {error}")) from None


def describe(value: Any) -> str:
    """How a value that YAML guessed a type for reads to a person."""
    if isinstance(value, bool):
        return f"the true/false value {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, dt.date):
        return f"the date {value.isoformat()}"
    if value is None:
        return "nothing"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a block of keys"
    return type(value).__name__
