"""Writing default.yaml from the schema: every setting, its default, and its help as a comment."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import yaml

from firmware.config.fields import ListKind, Secret, SectionKind, Spec, specs
from firmware.config.schema import Config

_WIDTH = 92
_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
"""Strings that read the same unquoted, unless YAML takes them for something else (`yes`)."""

HEADER = """\
# deskphone configuration: every setting, with its default and what it does.
#
# Copy this file to /etc/deskphone/deskphone.yaml (or point $DESKPHONE_CONFIG at another
# file) and change what you need; a key left out keeps its default. `deskphone check-config
# FILE` checks a file without starting the phone. Relative paths are taken from the
# directory of the file they are written in.
#
# Generated from firmware/config/schema.py by `python -m firmware.config --write-default`:
# edit the schema, not this file.
"""


def render_default() -> str:
    """The text of config/default.yaml."""
    lines = HEADER.splitlines()
    _render_section(Config, 0, lines)
    return "\n".join(lines) + "\n"


def _render_section(cls: type, indent: int, lines: list[str]) -> None:
    pad = " " * indent
    for spec in specs(cls):
        if indent == 0:
            lines.append("")
        if isinstance(spec.kind, ListKind) and isinstance(spec.kind.item, SectionKind):
            _comment(spec.about.help, f"{pad}# ", lines)
            _render_items(spec, spec.kind.item.cls, pad, lines)
            lines.append(f"{pad}{spec.name}: {_value(spec)}")
        elif isinstance(spec.kind, SectionKind):
            _comment(spec.about.help, f"{pad}# ", lines)
            lines.append(f"{pad}{spec.name}:")
            _render_section(spec.kind.cls, indent + 2, lines)
        else:
            _comment(spec.about.help, f"{pad}# ", lines)
            lines.append(f"{pad}{spec.name}: {_value(spec)}")


def _render_items(spec: Spec, item: type, pad: str, lines: list[str]) -> None:
    """Document the keys of a list's items, then show one item as a commented example."""
    for inner in specs(item):
        _comment(f"{inner.name}: {inner.about.help}", f"{pad}#   ", lines, hanging="  ")
    lines.append(f"{pad}# Example:")
    lines.append(f"{pad}#   {spec.name}:")
    example = _plain(item, 0)
    lines.append(f"{pad}#     - {example[0]}")
    lines.extend(f"{pad}#       {line}" for line in example[1:])


def _plain(cls: type, indent: int) -> list[str]:
    """A section as bare YAML lines with its defaults (or examples), for a commented example."""
    pad = " " * indent
    lines = []
    for spec in specs(cls):
        if isinstance(spec.kind, SectionKind):
            lines.append(f"{pad}{spec.name}:")
            lines.extend(_plain(spec.kind.cls, indent + 2))
        else:
            lines.append(f"{pad}{spec.name}: {_value(spec)}")
    return lines


def _comment(text: str, prefix: str, lines: list[str], hanging: str = "") -> None:
    """Help as comment lines: prose is wrapped, lines that start with a space are kept."""
    for paragraph in text.split("\n"):
        if paragraph.startswith(" "):
            lines.append(f"{prefix}{paragraph}")
            continue
        width = max(_WIDTH - len(prefix), 40)
        wrapped = textwrap.wrap(paragraph, width, subsequent_indent=hanging)
        lines.extend(f"{prefix}{line}" for line in wrapped)


def _value(spec: Spec) -> str:
    if spec.about.shown_default is not None:
        return _scalar(spec.about.shown_default)
    return _scalar(spec.default if spec.has_default else spec.about.example)


def _scalar(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(_scalar(item) for item in value) + "]"
    if isinstance(value, Secret):
        return json.dumps(value.value, ensure_ascii=False)
    if isinstance(value, str) and _PLAIN.fullmatch(value) and yaml.safe_load(value) == value:
        return value
    if isinstance(value, str | Path):
        return json.dumps(str(value), ensure_ascii=False)
    raise TypeError(f"no YAML form for default {value!r}")
