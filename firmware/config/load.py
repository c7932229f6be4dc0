"""Reading the configuration file (and the secrets file it names) into a `Config`."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import yaml
from yaml.nodes import Node

from firmware.config.errors import ConfigError, Issue
from firmware.config.fields import specs
from firmware.config.schema import Config
from firmware.config.secrets_file import read_secrets, unmatched_items
from firmware.config.walk import Secrets, Walk

DEFAULT_PATH = Path("/etc/deskphone/deskphone.yaml")
ENVIRONMENT_VARIABLE = "DESKPHONE_CONFIG"
MAX_FILE_BYTES = 1 << 20
"""Far above any real configuration; stops `check-config /dev/zero` from reading forever."""


def default_config_path() -> Path:
    """The file `deskphone run` reads: $DESKPHONE_CONFIG, else /etc/deskphone/deskphone.yaml."""
    return Path(os.environ.get(ENVIRONMENT_VARIABLE) or DEFAULT_PATH)


def load_config(path: Path | str | None = None, *, missing_ok: bool = False) -> Config:
    """Load and check a configuration file; `None` means `default_config_path()`.

    With `missing_ok`, a file that does not exist gives the built-in defaults, so the phone
    starts with no configuration at all. Raises ConfigError listing every problem found.
    """
    target = default_config_path() if path is None else Path(path)
    name = str(target)
    try:
        text, _ = _read(target, name)
    except FileNotFoundError:
        if missing_ok:
            return Config()
        raise ConfigError([Issue(name, None, None, "no such file")]) from None
    root = _compose(text, name)
    issues: list[Issue] = []
    secrets = _load_secrets(root, target, name, issues)
    walk = Walk(name, target.parent, issues, secrets)
    config = walk.section(Config, root, "", ())
    issues.extend(unmatched_items(secrets))
    if issues or not isinstance(config, Config):
        main_first = sorted(issues, key=lambda issue: (issue.file != name, issue.line or 0))
        raise ConfigError(main_first)
    return config


def _read(path: Path, name: str) -> tuple[str, os.stat_result]:
    """The file's text and status; FileNotFoundError passes through, other failures are
    ConfigErrors."""
    try:
        with path.open("rb") as file:
            status = os.fstat(file.fileno())
            data = file.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise ConfigError([Issue(name, None, None, "is a directory")]) from None
    except OSError as error:
        reason = (error.strerror or type(error).__name__).lower()
        raise ConfigError([Issue(name, None, None, f"cannot read: {reason}")]) from None
    if len(data) > MAX_FILE_BYTES:
        message = f"larger than {MAX_FILE_BYTES} bytes; not a configuration file?"
        raise ConfigError([Issue(name, None, None, message)])
    try:
        return data.decode("utf-8-sig"), status
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        message = f"not UTF-8 text (byte {data[error.start]:#04x})"
        raise ConfigError([Issue(name, line, None, message)]) from None


def _compose(text: str, name: str) -> Node | None:
    """The YAML node tree; syntax errors become `FILE:LINE: message`."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = None if mark is None else mark.line + 1
        message = error.problem or error.context or "invalid YAML"
        if error.context and error.problem and error.context_mark is not None:
            message = f"{message} ({error.context} at line {error.context_mark.line + 1})"
        raise ConfigError([Issue(name, line, None, f"YAML syntax: {message}")]) from None
    except yaml.reader.ReaderError as error:
        line = text.count("\n", 0, error.position) + 1
        message = f"YAML syntax: character {chr(error.character)!r} is not allowed"
        raise ConfigError([Issue(name, line, None, message)]) from None
    except RecursionError:
        raise ConfigError([Issue(name, None, None, "YAML nested too deeply")]) from None


def _load_secrets(root: Node | None, target: Path, name: str, issues: list[Issue]) -> Secrets:
    """Read the secrets file named by the top-level `secrets` key, if any, into Secrets."""
    probe = Walk(name, target.parent, [], Secrets(""))
    entries = probe.entries(root, "") or {}
    spec = next(spec for spec in specs(Config) if spec.name == "secrets")
    node = entries.get("secrets", (None, None))[1]
    path = None if node is None else probe.value(spec, node, "secrets", None)
    if not isinstance(path, Path):
        return Secrets("")
    secrets_name = str(path)
    secrets = Secrets(secrets_name)
    try:
        text, status = _read(path, secrets_name)
    except FileNotFoundError:
        issues.append(Issue(secrets_name, None, None, "no such file"))
        return secrets
    except ConfigError as error:
        issues.extend(error.issues)
        return secrets
    issues.extend(_permission_issues(status, secrets_name))
    try:
        secrets_root = _compose(text, secrets_name)
    except ConfigError as error:
        issues.extend(error.issues)
        return secrets
    walk = Walk(secrets_name, path.parent, issues, secrets, discreet=True)
    read_secrets(walk, Config, secrets_root, "", address=(), main_file=name)
    return secrets


def _permission_issues(status: os.stat_result, name: str) -> list[Issue]:
    issues = []
    mode = stat.S_IMODE(status.st_mode)
    if mode & 0o077:
        message = (
            f"mode {mode:04o} lets group or others access it; it must be 0600 or stricter"
            f" (chmod 600 {name})"
        )
        issues.append(Issue(name, None, None, message))
    user = os.geteuid()
    if status.st_uid != user:
        message = f"owned by uid {status.st_uid}, not by the user running deskphone (uid {user})"
        issues.append(Issue(name, None, None, message))
    return issues
