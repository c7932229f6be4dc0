"""What a configuration problem looks like: one line that names file, line and key path."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


def one_line(text: str) -> str:
    """Escape line breaks and other unprintable characters so an issue stays one line."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


@dataclass(frozen=True)
class Issue:
    """One problem; prints as `FILE:LINE: key.path: message`, omitting what is unknown."""

    file: str
    line: int | None
    path: str | None
    message: str

    def __str__(self) -> str:
        where = one_line(self.file) if self.line is None else f"{one_line(self.file)}:{self.line}"
        if self.path:
            return f"{where}: {one_line(self.path)}: {one_line(self.message)}"
        return f"{where}: {one_line(self.message)}"


class ConfigError(Exception):
    """The configuration is unusable; `issues` lists every problem found, not just the first."""

    def __init__(self, issues: Iterable[Issue]) -> None:
        self.issues = tuple(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))
