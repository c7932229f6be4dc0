"""How a setting is declared, and how the loader and the renderer read the declarations back.

A setting is one field of a frozen dataclass: its annotation is the type, its default is the
default, and `about()` in its metadata carries the help text (which becomes the comment in
default.yaml) and the check.
Everything else (loading, validation, the documentation file) is derived from these fields,
so adding a key is adding one line to a section in `schema.py`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Check = Callable[[Any], Any]
"""Validates a converted value; returns the value to store or raises ValueError(message)."""

_ABOUT = "deskphone.config"


@dataclass(frozen=True, repr=False)
class Secret:
    """A password or code: compares by value but never shows it in a repr, str or log line."""

    value: str

    def __repr__(self) -> str:
        return "Secret('******')" if self.value else "Secret('')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self.value)


class SettingError(ValueError):
    """Raised by a section's `__post_init__` when settings contradict each other."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


@dataclass(frozen=True)
class About:
    """What a declaration says beyond type and default."""

    help: str
    check: Check | None = None
    min_items: int = 0
    one_or_many: bool = False
    key: str | None = None
    example: object = None
    shown_default: str | None = None


def about(
    help: str,
    *,
    check: Check | None = None,
    min_items: int = 0,
    one_or_many: bool = False,
    key: str | None = None,
    example: object = None,
    shown_default: str | None = None,
) -> dict[str, About]:
    """The metadata of a setting: `field(default=..., metadata=about(help, ...))`.

    `check` is applied to the value (to each item of a list); `min_items` bounds a list;
    `one_or_many` lets a list be written as one scalar or null; `key` names the field that
    identifies an item of a list of mappings (the secrets file addresses items by it);
    `example` is shown in default.yaml for a setting without default; `shown_default` is what
    default.yaml shows when the default is computed (e.g. from the version).
    """
    return {_ABOUT: About(help, check, min_items, one_or_many, key, example, shown_default)}


@dataclass(frozen=True)
class ScalarKind:
    """bool, int, float, str, Path or Secret; `choices` restricts a str to a Literal's values."""

    python: type
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class OptionalKind:
    inner: Kind


@dataclass(frozen=True)
class ListKind:
    item: Kind


@dataclass(frozen=True)
class SectionKind:
    cls: type


Kind = ScalarKind | OptionalKind | ListKind | SectionKind

_SCALARS = (bool, int, float, str, Path, Secret)


@dataclass(frozen=True)
class Spec:
    """One setting as the loader and renderer see it."""

    name: str
    kind: Kind
    about: About
    default: object
    has_default: bool

    @property
    def is_secret(self) -> bool:
        kind = self.kind.inner if isinstance(self.kind, OptionalKind) else self.kind
        return isinstance(kind, ScalarKind) and kind.python is Secret


def kind_of(annotation: object) -> Kind:
    """Map a field annotation to the shape the loader converts YAML into."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (types.UnionType, typing.Union) and type(None) in args:
        (inner,) = (arg for arg in args if arg is not type(None))
        return OptionalKind(kind_of(inner))
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return ListKind(kind_of(args[0]))
    if origin is Literal and all(isinstance(arg, str) for arg in args):
        return ScalarKind(str, tuple(args))
    if annotation in _SCALARS:
        assert isinstance(annotation, type)
        return ScalarKind(annotation)
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return SectionKind(annotation)
    raise TypeError(f"unsupported setting type: {annotation!r}")


def specs(cls: type) -> tuple[Spec, ...]:
    """The settings of a section, in declaration order."""
    hints = typing.get_type_hints(cls)
    result = []
    for item in dataclasses.fields(cls):
        about = item.metadata.get(_ABOUT)
        if not isinstance(about, About):
            raise TypeError(f"{cls.__name__}.{item.name} has no metadata=about(...)")
        if item.default is not dataclasses.MISSING:
            default, has_default = item.default, True
        elif item.default_factory is not dataclasses.MISSING:
            default, has_default = item.default_factory(), True
        else:
            default, has_default = None, False
        result.append(Spec(item.name, kind_of(hints[item.name]), about, default, has_default))
    return tuple(result)
