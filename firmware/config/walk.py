"""Turning composed YAML nodes into the typed configuration, collecting every issue on the way.

We read nodes (yaml.compose with SafeLoader) instead of constructed objects: nodes keep line
numbers, keep duplicate keys visible, and never build a Python object from a tag. Only the
scalars we expect are constructed, with the safe constructor.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from firmware.config.checks import show
from firmware.config.errors import Issue
from firmware.config.fields import (
    About,
    Kind,
    ListKind,
    OptionalKind,
    ScalarKind,
    Secret,
    SectionKind,
    SettingError,
    Spec,
    specs,
)

_TAG = "tag:yaml.org,2002:"
NULL, BOOL, INT, FLOAT, STR = (_TAG + name for name in ("null", "bool", "int", "float", "str"))
TIMESTAMP, MERGE = _TAG + "timestamp", _TAG + "merge"
_TEXT_TAGS = frozenset({STR, INT, FLOAT, BOOL, TIMESTAMP})
_ALLOWED_TAGS = _TEXT_TAGS | {NULL, _TAG + "map", _TAG + "seq"}
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_-]+")

_EXPECTED: Final = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a string",
    Path: "a path",
    Secret: "a string",
}
_SCALAR_NAMES: Final = {
    NULL: "null",
    BOOL: "a boolean",
    INT: "an integer",
    FLOAT: "a number",
    STR: "a string",
    TIMESTAMP: "a date",
}


class _Invalid:
    """Marks a value that could not be converted; its issue is already recorded."""


INVALID: Final = _Invalid()

Address = tuple[str, ...]
"""Where a secret lives: field names, with list items named by their key (an account's uri)."""


def join(path: str, name: str) -> str:
    part = name if _PLAIN_NAME.fullmatch(name) else f"[{show(name)}]"
    if not path or part.startswith("["):
        return f"{path}{part}"
    return f"{path}.{part}"


def line_of(node: Node) -> int:
    return int(node.start_mark.line) + 1


def is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == NULL


def _key_node(item: Node, name: str) -> ScalarNode | None:
    """The scalar value of key `name` in a list item, as written (before any check)."""
    if not isinstance(item, MappingNode):
        return None
    for key, value in item.value:
        if isinstance(key, ScalarNode) and key.value == name:
            return value if isinstance(value, ScalarNode) else None
    return None


def describe(node: Node, secret: bool = False) -> str:
    """What a node is, for 'expected X, got Y'; a secret's value is never shown."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node.tag == NULL or secret:
        return _SCALAR_NAMES.get(node.tag, "a value")
    if node.tag == STR:
        return f"the string {show(node.value)}"
    text = str(node.value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass
class Override:
    """A secret from the secrets file, to replace the main file's value at `address`."""

    value: Secret
    line: int


@dataclass
class Secrets:
    """What the secrets file provides, and which of its list items the main file matched."""

    file: str
    values: dict[Address, Override] = field(default_factory=dict)
    items: dict[Address, tuple[int, str, str]] = field(default_factory=dict)
    """Line, key path and the message to give if the main file has no such item."""
    matched: set[Address] = field(default_factory=set)


class Walk:
    """Reads one file's nodes against the schema; appends to `issues` instead of raising."""

    def __init__(
        self,
        file: str,
        base: Path,
        issues: list[Issue],
        secrets: Secrets,
        *,
        discreet: bool = False,
    ) -> None:
        """`discreet` never shows a scalar's value in a message (for the secrets file)."""
        self.file = file
        self.discreet = discreet
        self.base = base
        self.issues = issues
        self.secrets = secrets
        self.constructor = SafeConstructor()

    def report(self, node: Node | None, path: str, message: str) -> None:
        line = None if node is None else line_of(node)
        self.issues.append(Issue(self.file, line, path or None, message))

    def entries(self, node: Node | None, path: str) -> dict[str, tuple[Node, Node]] | None:
        """The key and value nodes of a mapping by name; absent or null is an empty mapping."""
        if node is None or is_null(node):
            return {}
        if not isinstance(node, MappingNode) or node.tag not in _ALLOWED_TAGS:
            self.report(node, path, f"expected a mapping, got {self.got(node)}")
            return None
        result: dict[str, tuple[Node, Node]] = {}
        for key, value in node.value:
            if key.tag == MERGE:
                self.report(key, path, "merge keys (<<) are not supported")
            elif not isinstance(key, ScalarNode) or key.tag not in _TEXT_TAGS:
                self.report(key, path, f"expected a key name, got {self.got(key)}")
            elif key.value in result:
                first = line_of(result[key.value][0])
                self.report(
                    key, self.key_path(path, key.value), f"duplicate key (first at line {first})"
                )
            else:
                result[key.value] = (key, value)
        return result

    def got(self, node: Node, secret: bool = False) -> str:
        if node.tag not in _ALLOWED_TAGS:
            return "an unsupported tag" if secret or self.discreet else f"the tag {show(node.tag)}"
        return describe(node, secret or self.discreet)

    def unknown(self, key: Node, path: str, known: list[str]) -> None:
        close = difflib.get_close_matches(key.value, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        self.report(key, self.key_path(path, key.value), f"unknown key{hint}")

    def key_path(self, path: str, name: str) -> str:
        """The path of a key we cannot vouch for; when discreet, only its parent's (the line
        still points at it), since a mangled secrets file can turn a password into a key."""
        return path if self.discreet else join(path, name)

    def section(self, cls: type, node: Node | None, path: str, address: Address | None) -> object:
        start = len(self.issues)
        entries = self.entries(node, path)
        if entries is None:
            return INVALID
        settings = specs(cls)
        known = [spec.name for spec in settings]
        for name, (key, _) in entries.items():
            if name not in known:
                self.unknown(key, path, known)
        values: dict[str, object] = {}
        for spec in settings:
            sub = join(path, spec.name)
            sub_address = None if address is None else (*address, spec.name)
            entry = entries.get(spec.name)
            if entry is None and not spec.has_default:
                self.report(node, sub, "required key missing")
                continue
            value = INVALID if entry is None else self.value(spec, entry[1], sub, sub_address)
            if spec.is_secret and sub_address is not None:
                value = self.secret_override(sub_address, entry, value, sub)
            if value is not INVALID:
                values[spec.name] = value
        if len(self.issues) > start:
            return INVALID
        try:
            return cls(**values)
        except SettingError as error:
            entry = entries.get(error.name)
            self.report(node if entry is None else entry[1], join(path, error.name), error.message)
            return INVALID

    def secret_override(
        self, address: Address, entry: tuple[Node, Node] | None, value: object, path: str
    ) -> object:
        override = self.secrets.values.get(address)
        if override is None:
            return value
        if entry is not None and isinstance(value, Secret) and value:
            where = f"{self.secrets.file}:{override.line}"
            self.report(entry[1], path, f"also set in {where}; keep it in one place")
            return INVALID
        return override.value

    def value(self, spec: Spec, node: Node, path: str, address: Address | None) -> object:
        return self.convert(
            spec.kind, spec.about, node, path, address=address, secret=spec.is_secret
        )

    def convert(
        self,
        kind: Kind,
        about: About,
        node: Node,
        path: str,
        *,
        address: Address | None,
        secret: bool = False,
    ) -> object:
        if node.tag not in _ALLOWED_TAGS:
            tag = "" if secret or self.discreet else f" {show(node.tag)}"
            self.report(node, path, f"unsupported tag{tag}")
            return INVALID
        if isinstance(kind, OptionalKind):
            if is_null(node):
                return None
            return self.convert(kind.inner, about, node, path, address=address, secret=secret)
        if isinstance(kind, SectionKind):
            return self.section(kind.cls, node, path, address)
        if isinstance(kind, ListKind):
            return self.sequence(kind, about, node, path, address)
        value = self.scalar(kind, node, path, secret)
        if value is INVALID or about.check is None:
            return value
        try:
            return about.check(value)
        except ValueError as error:
            self.report(node, path, str(error))
            return INVALID

    def sequence(
        self, kind: ListKind, about: About, node: Node, path: str, address: Address | None
    ) -> object:
        single = about.one_or_many and isinstance(node, ScalarNode)
        if single:
            items = [] if is_null(node) else [node]
        elif isinstance(node, SequenceNode):
            items = list(node.value)
        else:
            self.report(node, path, f"expected a list, got {self.got(node)}")
            return INVALID
        if len(items) < about.min_items:
            self.report(node, path, f"expected at least {about.min_items} item(s)")
            return INVALID
        values = []
        for index, item in enumerate(items):
            item_address = self.item_address(about, item, address)
            item_about = About(about.help, check=about.check)
            item_path = path if single else f"{path}[{index}]"
            values.append(
                self.convert(kind.item, item_about, item, item_path, address=item_address)
            )
        if about.key is not None:
            self.check_unique_keys(about.key, items, path)
        if any(value is INVALID for value in values):
            return INVALID
        return tuple(values)

    def item_address(self, about: About, item: Node, address: Address | None) -> Address | None:
        """An item's address for secrets is its key field's text, as written."""
        if about.key is None or address is None:
            return None
        value = _key_node(item, about.key)
        if value is None:
            return None
        item_address = (*address, str(value.value))
        self.secrets.matched.add(item_address)
        return item_address

    def check_unique_keys(self, key_name: str, items: list[Node], path: str) -> None:
        first_line: dict[str, int] = {}
        for index, item in enumerate(items):
            value = _key_node(item, key_name)
            if value is None:
                continue
            if value.value in first_line:
                first = first_line[value.value]
                message = f"duplicate {key_name} {show(value.value)} (first at line {first})"
                self.report(value, f"{path}[{index}].{key_name}", message)
            else:
                first_line[value.value] = line_of(value)

    def scalar(self, kind: ScalarKind, node: Node, path: str, secret: bool) -> object:
        python = kind.python
        expected = _EXPECTED[python]
        if kind.choices:
            expected = "one of: " + ", ".join(kind.choices)
        if not isinstance(node, ScalarNode):
            self.report(node, path, f"expected {expected}, got {self.got(node, secret)}")
            return INVALID
        try:
            if python is bool and node.tag == BOOL:
                return self.constructor.construct_yaml_bool(node)
            if python is int and node.tag == INT:
                return self.constructor.construct_yaml_int(node)
            if python is float and node.tag in (INT, FLOAT):
                return self.number(node, path)
        except (ValueError, KeyError, OverflowError):
            self.report(node, path, f"expected {expected}, got {self.got(node, secret)}")
            return INVALID
        if python in (str, Path, Secret) and node.tag in _TEXT_TAGS:
            return self.text(kind, node, path, secret)
        self.report(node, path, f"expected {expected}, got {self.got(node, secret)}")
        return INVALID

    def number(self, node: ScalarNode, path: str) -> object:
        if node.tag == INT:
            value = float(self.constructor.construct_yaml_int(node))
        else:
            value = self.constructor.construct_yaml_float(node)
        if not math.isfinite(value):
            self.report(node, path, f"expected a finite number, got {describe(node)}")
            return INVALID
        return value

    def text(self, kind: ScalarKind, node: ScalarNode, path: str, secret: bool) -> object:
        text = str(node.value)
        if "\x00" in text:
            self.report(node, path, "NUL characters are not allowed")
            return INVALID
        if kind.choices and text not in kind.choices:
            close = difflib.get_close_matches(text, kind.choices, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            choices = ", ".join(kind.choices)
            self.report(node, path, f"expected one of: {choices}; got {show(text)}{hint}")
            return INVALID
        if kind.python is Secret:
            return Secret(text)
        if kind.python is Path:
            if not text:
                self.report(node, path, "expected a path, got an empty string")
                return INVALID
            return self.base / text
        return text
