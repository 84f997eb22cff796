"""Read one staff-edited YAML file, keeping line numbers and refusing the traps that silently change meaning."""

from __future__ import annotations

import datetime as dt
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


class _Loader(yaml.SafeLoader):
    pass


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
            raise yaml.constructor.ConstructorError(
                None, None,
                f"the key '{key}' appears twice in the same block (first on line {result.lines[key]}); "
                "YAML would silently keep only the last one, so delete or rename one of them",
                key_node.start_mark,
            )
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


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)


def read_yaml(path: Path, shown_as: str) -> Any:
    """The document in `path`, or YamlProblem naming the file, the line and what to do."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise YamlProblem(Problem(shown_as, None, None, "is not UTF-8 text; save it as UTF-8")) from None
    except OSError as error:
        raise YamlProblem(Problem(shown_as, None, None, f"cannot be read ({error.strerror})")) from None
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader derives from SafeLoader
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
