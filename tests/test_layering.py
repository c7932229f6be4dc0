"""The import rules of design.md, checked on the source so they cannot rot silently."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Packages that must stay pure: bytes and `now` in, events and bytes out. The media
# thread (`firmware/rtp/stream.py`) is the one impure module allowed beside the rtp core.
PURE_PACKAGES = ["firmware/sip", "firmware/phone", "firmware/rtp"]
IMPURE_EXCEPTIONS = {"firmware/rtp/stream.py"}
FORBIDDEN_IN_PURE = {"threading", "socket", "select", "selectors", "time", "asyncio", "random"}


def _imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def _python_files(relative: str) -> list[Path]:
    return sorted(
        path
        for path in (ROOT / relative).rglob("*.py")
        if str(path.relative_to(ROOT)) not in IMPURE_EXCEPTIONS
    )


def test_hw_never_imports_firmware() -> None:
    offences = [
        f"{path.relative_to(ROOT)}:{line}: imports {module}"
        for path in _python_files("hw")
        for line, module in _imported_modules(path)
        if module.split(".")[0] == "firmware"
    ]
    assert offences == []


@pytest.mark.parametrize("package", PURE_PACKAGES)
def test_pure_packages_do_no_io_threads_or_clocks(package: str) -> None:
    offences = [
        f"{path.relative_to(ROOT)}:{line}: imports {module}"
        for path in _python_files(package)
        for line, module in _imported_modules(path)
        if module.split(".")[0] in FORBIDDEN_IN_PURE
    ]
    assert offences == []


def test_the_checks_see_the_sources() -> None:
    """Guard against the rules above passing because they read nothing."""
    assert _python_files("firmware/sip")
    assert _python_files("hw")


def test_a_forbidden_import_is_caught(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import os\nfrom time import monotonic\nimport threading as t\n")
    assert [module for _, module in _imported_modules(sample)] == ["os", "time", "threading"]
