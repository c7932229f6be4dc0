"""Random edits of real configuration files must give a valid Config or clear issues, never a
traceback.

Each variant is derived from its own seed (`DESKPHONE_FUZZ_SEED`, variant index), so a
failure names the one variant to replay. `DESKPHONE_FUZZ_VARIANTS` raises the count for a
longer soak.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from firmware.config import Config, ConfigError, load_config

ROOT = Path(__file__).resolve().parent.parent
BASES = {
    "default": (ROOT / "config" / "default.yaml").read_text(encoding="utf-8"),
    "full": (ROOT / "tests" / "data" / "config" / "full.yaml").read_text(encoding="utf-8"),
}
SEED = int(os.environ.get("DESKPHONE_FUZZ_SEED", "3261"))
VARIANTS = int(os.environ.get("DESKPHONE_FUZZ_VARIANTS", "1000"))
PASSWORD = "Pw-9f3e-never-shown"

MAIN_WITH_SECRETS = """\
sip:
  accounts:
    - uri: sip:1001@pbx.example
    - uri: sips:door@pbx.example
      registrar: sip:pbx.example
secrets: secrets.yaml
"""
SECRETS = f"""\
sip:
  accounts:
    "sip:1001@pbx.example":
      password: {PASSWORD}
    "sips:door@pbx.example": {{password: "{PASSWORD}"}}
"""

VALUES = [
    "0",
    "-1",
    "65536",
    "99999999999999999999999",
    "9" * 5000,
    "1.0e+999",
    "1e999",
    ".inf",
    "-.inf",
    ".nan",
    "0x1F",
    "0b_",
    "0o17",
    "017",
    "1_000",
    "1:30",
    "~",
    "null",
    "",
    "[]",
    "{}",
    "[1, [2, [3]]]",
    "{a: {b: c}}",
    "yes",
    "no",
    "on",
    "true",
    "'quoted'",
    '"double \\u2028"',
    '"\\0"',
    '"\\x85"',
    "☎ Telefon",
    "\t",
    "日本語",
    "\u200f\u0301",
    "&a 5",
    "*a",
    "*undefined",
    "!!python/object/apply:os.system ['true']",
    "!secret x",
    "!!binary aGk=",
    "!!set {a, b}",
    "!!omap [a: 1]",
    "!!int abc",
    "!!bool maybe",
    "!!float x",
    "!!str 5",
    "2024-01-01",
    "2024-01-01T00:00:00Z",
    "<<: *a",
    "'unterminated",
    '"unterminated',
    "{a: 1",
    "[1, 2",
    "|\n  block",
    ">-\n  folded",
    "sip:1001@pbx",
    "sips:x@[::1]:5061",
    "tel:+123",
    "sip:",
    "sip:@",
    "sip:%zz@x",
    "[::]:5060",
    "[::1:5060",
    "0.0.0.0:99999",
    "host:-1",
    "10.0.0.0/8",
    "::/0",
    "/tmp/sock",
    "a" * 300,
    "%",
    "@",
    "`",
    "- item",
    "? complex",
    ": colon",
    "#",
    "{version}",
    "[udp, udp]",
    "[tcp]",
    "debug",
    "603",
    "0.001",
    "1e-9",
    "-0.0",
]
CHARACTERS = [
    *":-#'\"[]{},&*!|>%@`?\t \\",
    "\n",
    "\r",
    "\x00",
    "\x85",
    "\u2028",
    "\ufeff",
    "é",
    "🙂",
]
KEYS = ["sip", "listen", "accounts", "uri", "password", "lisen", "timers", "t1", "secrets", "x"]


def _value_lines(lines: list[str]) -> list[int]:
    return [i for i, line in enumerate(lines) if ":" in line and not line.lstrip().startswith("#")]


def _delete(lines: list[str], rng: random.Random) -> None:
    del lines[rng.randrange(len(lines))]


def _duplicate(lines: list[str], rng: random.Random) -> None:
    index = rng.randrange(len(lines))
    lines.insert(rng.randrange(len(lines) + 1), lines[index])


def _swap(lines: list[str], rng: random.Random) -> None:
    a, b = rng.randrange(len(lines)), rng.randrange(len(lines))
    lines[a], lines[b] = lines[b], lines[a]


def _unknown_key(lines: list[str], rng: random.Random) -> None:
    indent = " " * rng.choice([0, 2, 4, 6])
    lines.insert(rng.randrange(len(lines) + 1), f"{indent}{rng.choice(KEYS)}: {rng.choice(VALUES)}")


def _indent(lines: list[str], rng: random.Random) -> None:
    index = rng.randrange(len(lines))
    line = lines[index]
    body = line.lstrip(" ")
    width = len(line) - len(body)
    choice = rng.randrange(3)
    if choice == 0:
        lines[index] = " " * max(0, width + rng.choice([-3, -2, -1, 1, 2, 3])) + body
    elif choice == 1:
        lines[index] = "\t" * max(1, width // 2) + body
    else:
        lines[index] = body


def _value(lines: list[str], rng: random.Random) -> None:
    candidates = _value_lines(lines)
    if candidates:
        index = rng.choice(candidates)
        key = lines[index].split(":", 1)[0]
        lines[index] = f"{key}: {rng.choice(VALUES)}"


def _character(lines: list[str], rng: random.Random) -> None:
    index = rng.randrange(len(lines))
    line = lines[index]
    at = rng.randrange(len(line) + 1)
    lines[index] = line[:at] + rng.choice(CHARACTERS) + line[at:]


def _uncomment(lines: list[str], rng: random.Random) -> None:
    comments = [i for i, line in enumerate(lines) if line.lstrip().startswith("#")]
    if comments:
        index = rng.choice(comments)
        lines[index] = re.sub(r"#( {0,3})", "", lines[index], count=1)


def _alias(lines: list[str], rng: random.Random) -> None:
    candidates = _value_lines(lines)
    if len(candidates) >= 2:
        anchor, alias = rng.sample(candidates, 2)
        key, _, value = lines[anchor].partition(":")
        lines[anchor] = f"{key}: &x{value}"
        lines[alias] = lines[alias].split(":", 1)[0] + ": *x"


def _typo(lines: list[str], rng: random.Random) -> None:
    candidates = _value_lines(lines)
    if candidates:
        index = rng.choice(candidates)
        key, colon, rest = lines[index].partition(":")
        stripped = key.lstrip()
        if len(stripped) > 1:
            at = rng.randrange(len(stripped))
            typo = stripped[:at] + stripped[at + 1 :]
            lines[index] = key[: len(key) - len(stripped)] + typo + colon + rest


def _flow(lines: list[str], rng: random.Random) -> None:
    index = rng.randrange(len(lines))
    lines[index] = rng.choice(["- ", "? ", "{", "[", "- - "]) + lines[index]


MUTATIONS: list[Callable[[list[str], random.Random], None]] = [
    _delete, _duplicate, _swap, _unknown_key, _indent, _value, _value, _character,
    _uncomment, _alias, _typo, _flow,
]  # fmt: skip


def mutate(text: str, rng: random.Random) -> bytes:
    lines = text.split("\n")
    for _ in range(rng.choice([1, 1, 1, 2, 2, 3, 5])):
        if not lines:
            lines = [""]
        rng.choice(MUTATIONS)(lines, rng)
    data = "\n".join(lines).encode("utf-8")
    if rng.random() < 0.05:
        data = data[: rng.randrange(len(data) + 1)]
    if rng.random() < 0.03 and data:
        at = rng.randrange(len(data))
        data = data[:at] + bytes([rng.randrange(256)]) + data[at + 1 :]
    return data


ISSUE = re.compile(r"(?P<file>.+?)(?::(?P<line>[0-9]+))?: (?P<rest>\S.*)")
"""FILE[:LINE]: [key.path: ]message; FILE may be any secrets path a variant names."""


def check(data: bytes, secrets: bytes | None) -> str:
    """Load one variant; return 'valid' or 'invalid', or fail with what went wrong."""
    Path("deskphone.yaml").write_bytes(data)
    if secrets is not None:
        Path("secrets.yaml").write_bytes(secrets)
        Path("secrets.yaml").chmod(0o600)
    try:
        config = load_config("deskphone.yaml")
    except ConfigError as error:
        assert error.issues, "ConfigError without issues"
        for issue in error.issues:
            text = str(issue)
            match = ISSUE.fullmatch(text)
            assert match, f"malformed issue: {text!r}"
            sources = {"deskphone.yaml": data, "secrets.yaml": secrets or b""}
            source = sources.get(match["file"])
            if match["line"] is not None and source is not None:
                assert 1 <= int(match["line"]) <= source.count(b"\n") + 2, text
            assert PASSWORD not in text, f"password shown: {text!r}"
        return "invalid"
    assert isinstance(config, Config)
    assert PASSWORD not in repr(config)
    return "valid"


def test_random_edits_give_a_config_or_clear_issues(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    outcomes = {"valid": 0, "invalid": 0}
    bases = [("default", None), ("full", None), ("secrets", "main"), ("secrets", "secrets")]
    for index in range(VARIANTS):
        rng = random.Random(f"{SEED}-{index}")
        base, target = bases[index % len(bases)]
        if base == "secrets":
            main = MAIN_WITH_SECRETS.encode()
            secrets = SECRETS.encode()
            if target == "main":
                main = mutate(MAIN_WITH_SECRETS, rng)
            else:
                secrets = mutate(SECRETS, rng)
        else:
            main, secrets = mutate(BASES[base], rng), None
        finished = False
        try:
            outcomes[check(main, secrets)] += 1
            finished = True
        finally:
            if not finished:  # printed output is shown with the failure: how to replay it
                print(f"variant {index}, DESKPHONE_FUZZ_SEED={SEED}, base {base}/{target}")
                print(f"deskphone.yaml: {main!r}\nsecrets.yaml: {secrets!r}")
    assert outcomes["valid"] >= VARIANTS // 20, outcomes
    assert outcomes["invalid"] >= VARIANTS // 4, outcomes
