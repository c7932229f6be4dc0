"""The configuration contract: typed values, exact `FILE:LINE: key.path: message` issues, all
of them at once, secrets kept out of sight, default.yaml in step with the schema, and the
`check-config` exit statuses."""

from __future__ import annotations

import dataclasses
import os
import textwrap
from pathlib import Path

import pytest

from firmware import cli
from firmware.config import (
    DEFAULT_PATH,
    ENVIRONMENT_VARIABLE,
    AccountConfig,
    Config,
    ConfigError,
    Secret,
    default_config_path,
    load_config,
    render_default,
    split_host_port,
)
from firmware.config.__main__ import main as config_main
from firmware.config.schema import VERSION

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_YAML = ROOT / "config" / "default.yaml"
DATA = Path(__file__).resolve().parent / "data" / "config"


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Work in a fresh directory so issues name `deskphone.yaml`, as an installer sees them."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(ENVIRONMENT_VARIABLE, raising=False)
    return tmp_path


def write(name: str, text: str, mode: int = 0o600) -> Path:
    path = Path(name)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    path.chmod(mode)
    return path


def load(text: str) -> Config:
    return load_config(write("deskphone.yaml", text))


def issues(text: str | bytes, name: str = "deskphone.yaml") -> list[str]:
    if isinstance(text, bytes):
        Path(name).write_bytes(text)
    else:
        write(name, text)
    with pytest.raises(ConfigError) as caught:
        load_config(Path(name))
    return [str(issue) for issue in caught.value.issues]


# Good configurations


def test_default_yaml_loads_to_the_built_in_defaults() -> None:
    assert load_config(DEFAULT_YAML) == Config()


def test_no_file_at_all_gives_the_defaults(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, str(here / "absent.yaml"))
    assert load_config(None, missing_ok=True) == Config()
    assert load_config(here / "absent.yaml", missing_ok=True) == Config()


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n", "sip:\naudio: ~\n"])
def test_empty_documents_and_sections_give_the_defaults(here: Path, text: str) -> None:
    assert load(text) == Config()


def test_full_configuration_is_typed(here: Path) -> None:
    config = load_config(DATA / "full.yaml")
    sip = config.sip
    assert sip.listen == "[::]:5070"
    assert sip.transports == ("udp",)
    assert sip.trusted == ("192.168.1.0/24", "fd00::/8", "10.0.0.7")
    assert sip.user_agent == f"door-intercom/{VERSION}"
    assert (sip.max_calls, sip.reject_status, sip.register_expires) == (1, 603, 3600)
    assert (sip.timers.t1, sip.timers.t2, sip.timers.t4) == (0.25, 2.0, 5.0)
    assert sip.keepalive_interval == 0
    assert (sip.register_retry_min, sip.register_retry_max) == (2.0, 60.5)
    first, second = sip.accounts
    assert first == AccountConfig(
        uri="sip:1001@pbx.example",
        password=Secret("0123"),
        auth_user="1001",
        display_name="Front door",
        registrar=("sip:pbx.example:5060",),
        outbound_proxy="sip:proxy.example;lr",
        auto_answer=True,
    )
    assert second.registrar == ("sip:a.example", "sips:b.example")
    assert second.auth_user is None
    assert config.audio.capture_device == "plughw:CARD=seeed2micvoicec,DEV=0"
    assert (config.log.level, config.log.sip_trace) == ("debug", True)
    assert config.control.socket == DATA / "run" / "control.sock"


def test_yaml_scalars_are_read_as_written_where_text_is_expected(here: Path) -> None:
    config = load("""\
        sip:
          accounts:
            - uri: sip:1001@pbx
              auth_user: 0x1F
              password: yes
              display_name: 2024-01-01
              registrar: null
        """)
    account = config.sip.accounts[0]
    assert (account.auth_user, account.password, account.display_name) == (
        "0x1F",
        Secret("yes"),
        "2024-01-01",
    )
    assert account.registrar == ()


def test_numbers_in_yaml_1_1_notations(here: Path) -> None:
    config = load("sip: {max_calls: 0x10, register_expires: 1_200, timers: {t1: 1, t2: 2.5e+0}}")
    assert (config.sip.max_calls, config.sip.register_expires) == (16, 1200)
    assert (config.sip.timers.t1, config.sip.timers.t2) == (1.0, 2.5)
    assert isinstance(config.sip.timers.t1, float)


def test_anchors_and_aliases_are_plain_yaml(here: Path) -> None:
    config = load("""\
        sip:
          trusted: &lan ["192.168.0.0/16"]
          accounts:
            - {uri: "sip:1@pbx", registrar: &reg "sip:pbx:5062"}
            - {uri: "sip:2@pbx", registrar: *reg}
        """)
    assert [account.registrar for account in config.sip.accounts] == [("sip:pbx:5062",)] * 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.0.0.0:5060", ("0.0.0.0", 5060)),
        ("[::]:5060", ("::", 5060)),
        ("[fe80::1%eth0]:0", ("fe80::1%eth0", 0)),
        ("pbx.example:65535", ("pbx.example", 65535)),
        ("localhost:1", ("localhost", 1)),
    ],
)
def test_split_host_port(text: str, expected: tuple[str, int]) -> None:
    assert split_host_port(text) == expected


def test_the_configuration_is_frozen() -> None:
    config = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.sip.max_calls = 3  # type: ignore[misc]


# Locations and paths


def test_default_config_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENVIRONMENT_VARIABLE, raising=False)
    assert default_config_path() == DEFAULT_PATH == Path("/etc/deskphone/deskphone.yaml")
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, "/srv/phone.yaml")
    assert default_config_path() == Path("/srv/phone.yaml")


def test_load_without_a_path_reads_the_default_path(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write("phone.yaml", "sip: {max_calls: 5}")
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, "phone.yaml")
    assert load_config(None).sip.max_calls == 5


def test_a_missing_file_is_an_error_unless_allowed(here: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config("absent.yaml")
    assert [str(issue) for issue in caught.value.issues] == ["absent.yaml: no such file"]


def test_unreadable_paths(here: Path) -> None:
    Path("adir").mkdir()
    with pytest.raises(ConfigError) as caught:
        load_config("adir")
    assert [str(issue) for issue in caught.value.issues] == ["adir: is a directory"]
    assert issues(b"a" * (1 << 20 + 1), name="big.yaml") == [
        "big.yaml: larger than 1048576 bytes; not a configuration file?"
    ]


def test_relative_paths_are_taken_from_the_files_directory(here: Path) -> None:
    Path("etc").mkdir()
    write("etc/deskphone.yaml", "control: {socket: control.sock}")
    assert load_config("etc/deskphone.yaml").control.socket == Path("etc/control.sock")
    absolute = here / "etc" / "deskphone.yaml"
    assert load_config(absolute).control.socket == here / "etc" / "control.sock"


# One problem, one exact line


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "sip: {max_calls: two}",
            "deskphone.yaml:1: sip.max_calls: expected an integer, got the string 'two'",
            id="type-int",
        ),
        pytest.param(
            "sip: {max_calls: '2'}",
            "deskphone.yaml:1: sip.max_calls: expected an integer, got the string '2'",
            id="quoted-int",
        ),
        pytest.param(
            "log: {sip_trace: 1}",
            "deskphone.yaml:1: log.sip_trace: expected true or false, got 1",
            id="type-bool",
        ),
        pytest.param(
            "sip:\n  timers: {t1: fast}",
            "deskphone.yaml:2: sip.timers.t1: expected a number, got the string 'fast'",
            id="type-float",
        ),
        pytest.param(
            "sip:\n  trusted: 10.0.0.0/8",
            "deskphone.yaml:2: sip.trusted: expected a list, got the string '10.0.0.0/8'",
            id="type-list",
        ),
        pytest.param(
            "sip: [listen]",
            "deskphone.yaml:1: sip: expected a mapping, got a list",
            id="type-mapping",
        ),
        pytest.param(
            "audio:\n  capture_device: [hw]",
            "deskphone.yaml:2: audio.capture_device: expected a string, got a list",
            id="type-string",
        ),
        pytest.param(
            "sip:\n  listen:",
            "deskphone.yaml:2: sip.listen: expected a string, got null",
            id="null",
        ),
        pytest.param(
            "- sip",
            "deskphone.yaml:1: expected a mapping, got a list",
            id="root-not-mapping",
        ),
        pytest.param(
            "sip:\n  lisen: 0.0.0.0:5060",
            "deskphone.yaml:2: sip.lisen: unknown key; did you mean 'listen'?",
            id="did-you-mean",
        ),
        pytest.param(
            "speaker: {volume: 3}",
            "deskphone.yaml:1: speaker: unknown key",
            id="unknown-key",
        ),
        pytest.param(
            "log: {level: warn}",
            "deskphone.yaml:1: log.level: expected one of: debug, info, warning, error;"
            " got 'warn'; did you mean 'warning'?",
            id="choice",
        ),
        pytest.param(
            "sip:\n  transports: [udp, sctp]",
            "deskphone.yaml:2: sip.transports[1]: expected one of: udp, tcp; got 'sctp'",
            id="choice-in-list",
        ),
        pytest.param(
            "sip:\n  transports: []",
            "deskphone.yaml:2: sip.transports: expected at least 1 item(s)",
            id="empty-list",
        ),
        pytest.param(
            "sip:\n  max_calls: 17",
            "deskphone.yaml:2: sip.max_calls: must be between 1 and 16, got 17",
            id="range",
        ),
        pytest.param(
            "sip:\n  reject_status: 200",
            "deskphone.yaml:2: sip.reject_status: must be between 400 and 699, got 200",
            id="status",
        ),
        pytest.param(
            "sip:\n  max_calls: " + "9" * 5000,
            "deskphone.yaml:2: sip.max_calls: expected an integer, got " + "9" * 37 + "...",
            id="huge-int",
        ),
        pytest.param(
            "sip:\n  timers: {t1: 1.0e+999}",
            "deskphone.yaml:2: sip.timers.t1: expected a finite number, got 1.0e+999",
            id="infinite",
        ),
        pytest.param(
            "sip:\n  timers: {t4: .nan}",
            "deskphone.yaml:2: sip.timers.t4: expected a finite number, got .nan",
            id="nan",
        ),
        pytest.param(
            "sip:\n  timers: {t1: 2, t2: 1}",
            "deskphone.yaml:2: sip.timers.t2: must be at least t1 (2.0), got 1.0",
            id="cross-field",
        ),
        pytest.param(
            "sip:\n  register_retry_min: 60\n  register_retry_max: 30",
            "deskphone.yaml:3: sip.register_retry_max: must be at least register_retry_min"
            " (60.0), got 30.0",
            id="cross-field-retry",
        ),
        pytest.param(
            "sip:\n  listen: 0.0.0.0:65536",
            "deskphone.yaml:2: sip.listen: not a host:port: '0.0.0.0:65536' (port must be 0-65535)",
            id="port-range",
        ),
        pytest.param(
            "sip:\n  listen: 0.0.0.0:5O60",
            "deskphone.yaml:2: sip.listen: not a host:port: '0.0.0.0:5O60' (port must be 0-65535)",
            id="port-letters",
        ),
        pytest.param(
            "sip:\n  listen: 0.0.0.0:5٠60",
            "deskphone.yaml:2: sip.listen: not a host:port: '0.0.0.0:5٠60' (port must be 0-65535)",
            id="port-unicode-digit",
        ),
        pytest.param(
            'sip:\n  listen: "0.0.0.0"',
            "deskphone.yaml:2: sip.listen: not a host:port: '0.0.0.0'"
            " (no ':port', e.g. '0.0.0.0:5060')",
            id="no-port",
        ),
        pytest.param(
            'sip:\n  listen: "::1:5060"',
            "deskphone.yaml:2: sip.listen: not a host:port: '::1:5060'"
            " (write IPv6 as '[::1]:5060')",
            id="ipv6-brackets",
        ),
        pytest.param(
            'sip:\n  listen: "[::g]:5060"',
            "deskphone.yaml:2: sip.listen: not a host:port: '[::g]:5060' (bad IPv6 address)",
            id="bad-ipv6",
        ),
        pytest.param(
            'sip:\n  listen: "[::1]5060"',
            "deskphone.yaml:2: sip.listen: not a host:port: '[::1]5060' (no ':port' after ']')",
            id="ipv6-no-colon",
        ),
        pytest.param(
            'sip:\n  listen: "300.1.1.1:5060"',
            "deskphone.yaml:2: sip.listen: not a host:port: '300.1.1.1:5060' (bad IPv4 address)",
            id="bad-ipv4",
        ),
        pytest.param(
            'sip:\n  listen: "pbx_1.example:5060"',
            "deskphone.yaml:2: sip.listen: not a host:port: 'pbx_1.example:5060' (bad host name)",
            id="bad-hostname",
        ),
        pytest.param(
            "sip:\n  trusted: [10.0.0.1/8]",
            "deskphone.yaml:2: sip.trusted[0]: not a CIDR network: '10.0.0.1/8'"
            " (host bits set; did you mean '10.0.0.0/8'?)",
            id="cidr-host-bits",
        ),
        pytest.param(
            "sip:\n  trusted:\n    - 127.0.0.0/8\n    - lan",
            "deskphone.yaml:4: sip.trusted[1]: not a CIDR network: 'lan'",
            id="cidr",
        ),
        pytest.param(
            'sip:\n  user_agent: "a\\r\\nX-Injected: 1"',
            "deskphone.yaml:2: sip.user_agent: control characters are not allowed:"
            " 'a\\r\\nX-Injected: 1'",
            id="header-injection",
        ),
        pytest.param(
            'audio:\n  playback_device: "hw\\0"',
            "deskphone.yaml:2: audio.playback_device: NUL characters are not allowed",
            id="nul",
        ),
        pytest.param(
            "control:\n  socket: /" + "s" * 107,
            "deskphone.yaml:2: control.socket: too long for a unix socket path"
            " (108 bytes, at most 107)",
            id="socket-path",
        ),
        pytest.param(
            "control:\n  socket: ''",
            "deskphone.yaml:2: control.socket: expected a path, got an empty string",
            id="empty-path",
        ),
        pytest.param(
            "control:\n  socket: !secret door",
            "deskphone.yaml:2: control.socket: unsupported tag '!secret'",
            id="custom-tag",
        ),
        pytest.param(
            "control:\n  socket: !!python/object/apply:os.system [true]",
            "deskphone.yaml:2: control.socket: unsupported tag"
            " 'tag:yaml.org,2002:python/object/apply:os.system'",
            id="python-tag",
        ),
        pytest.param(
            "sip: !!set {a, b}",
            "deskphone.yaml:1: sip: unsupported tag 'tag:yaml.org,2002:set'",
            id="set-tag",
        ),
        pytest.param(
            "sip:\n  <<: {max_calls: 1}",
            "deskphone.yaml:2: sip: merge keys (<<) are not supported",
            id="merge-key",
        ),
        pytest.param(
            "sip:\n  [a]: 1",
            "deskphone.yaml:2: sip: expected a key name, got a list",
            id="complex-key",
        ),
    ],
)
def test_each_kind_of_problem(here: Path, text: str, expected: str) -> None:
    assert issues(text) == [expected]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "sip: [\n",
            "deskphone.yaml:2: YAML syntax: expected the node content, but found"
            " '<stream end>' (while parsing a flow node at line 2)",
            id="unclosed-flow",
        ),
        pytest.param(
            "sip:\n\tlisten: x\n",
            "deskphone.yaml:2: YAML syntax: found character '\\t' that cannot start any token",
            id="tab",
        ),
        pytest.param(
            "sip:\n  listen: a\n   max_calls: 3\n",
            "deskphone.yaml:3: YAML syntax: mapping values are not allowed here",
            id="indentation",
        ),
        pytest.param(
            "log:\n  level: info\n bad: 1\n",
            "deskphone.yaml:3: YAML syntax: expected <block end>, but found"
            " '<block mapping start>' (while parsing a block mapping at line 1)",
            id="dedent",
        ),
        pytest.param(
            "sip: {}\n---\nlog: {}\n",
            "deskphone.yaml:2: YAML syntax: but found another document"
            " (expected a single document in the stream at line 1)",
            id="two-documents",
        ),
        pytest.param(
            "sip: *nowhere\n",
            "deskphone.yaml:1: YAML syntax: found undefined alias 'nowhere'",
            id="undefined-alias",
        ),
        pytest.param(
            "sip:\n  listen: 'a\x07'\n",
            "deskphone.yaml:2: YAML syntax: character '\\x07' is not allowed",
            id="control-character",
        ),
    ],
)
def test_yaml_syntax_errors_name_file_and_line(here: Path, text: str, expected: str) -> None:
    assert issues(text) == [expected]


def test_text_that_is_not_utf8(here: Path) -> None:
    assert issues(b"sip:\n  listen: caf\xe9\n") == ["deskphone.yaml:2: not UTF-8 text (byte 0xe9)"]


def test_the_example_from_the_issue(here: Path) -> None:
    text = "\n" * 10 + "sip:\n  accounts:\n    - uri: sip:1001@pbx.local\n"
    text += "      registrar: pbx.local:5060x\n"
    assert issues(text) == [
        "deskphone.yaml:14: sip.accounts[0].registrar: not a SIP URI: 'pbx.local:5060x'"
    ]


@pytest.mark.parametrize(
    ("account", "expected"),
    [
        pytest.param(
            "- {uri: tel:+4930123}",
            "sip.accounts[0].uri: not a SIP URI: 'tel:+4930123' (expected sip: or sips:)",
            id="tel",
        ),
        pytest.param(
            "- {uri: sip:pbx.example}",
            "sip.accounts[0].uri: not a SIP URI with a user: 'sip:pbx.example'"
            " (e.g. 'sip:1001@pbx.example')",
            id="no-user",
        ),
        pytest.param(
            "- {uri: 'sip:1001@'}",
            "sip.accounts[0].uri: not a SIP URI: 'sip:1001@'",
            id="malformed",
        ),
        pytest.param(
            "- {password: x}",
            "sip.accounts[0].uri: required key missing",
            id="required",
        ),
        pytest.param(
            "- {uri: 'sip:1@pbx', registrar: [sip:a, 'http://b']}",
            "sip.accounts[0].registrar[1]: not a SIP URI: 'http://b'",
            id="registrar-list",
        ),
        pytest.param(
            "- {uri: 'sip:1@pbx', outbound_proxy: proxy}",
            "sip.accounts[0].outbound_proxy: not a SIP URI: 'proxy'",
            id="proxy",
        ),
        pytest.param(
            "- {uri: 'sip:1@pbx', auth_user: ''}",
            "sip.accounts[0].auth_user: must not be empty",
            id="auth-user",
        ),
        pytest.param(
            "- {uri: 'sip:1@pbx', auto_anwser: true}",
            "sip.accounts[0].auto_anwser: unknown key; did you mean 'auto_answer'?",
            id="item-did-you-mean",
        ),
        pytest.param(
            "uri: sip:1@pbx",
            "sip.accounts: expected a list, got a mapping",
            id="not-a-list",
        ),
    ],
)
def test_account_problems(here: Path, account: str, expected: str) -> None:
    assert issues(f"sip:\n  accounts:\n    {account}\n") == [f"deskphone.yaml:3: {expected}"]


def test_duplicate_keys_at_every_depth(here: Path) -> None:
    assert issues("""\
        sip:
          listen: 0.0.0.0:5060
          listen: 0.0.0.0:5061
          timers:
            t1: 0.5
            t1: 1.0
          accounts:
            - uri: sip:1@pbx
              auto_answer: true
              auto_answer: false
        log: {}
        log: {level: debug}
        """) == [
        "deskphone.yaml:3: sip.listen: duplicate key (first at line 2)",
        "deskphone.yaml:6: sip.timers.t1: duplicate key (first at line 5)",
        "deskphone.yaml:10: sip.accounts[0].auto_answer: duplicate key (first at line 9)",
        "deskphone.yaml:12: log: duplicate key (first at line 11)",
    ]


def test_duplicate_accounts(here: Path) -> None:
    assert issues("""\
        sip:
          accounts:
            - uri: sip:1001@pbx
            - uri: sip:1002@pbx
            - uri: sip:1001@pbx
        """) == [
        "deskphone.yaml:5: sip.accounts[2].uri: duplicate uri 'sip:1001@pbx' (first at line 3)"
    ]


def test_all_problems_are_reported_at_once_in_line_order(here: Path) -> None:
    assert issues("""\
        sip:
          listen: "pbx:99999"
          lstn: 3
          max_calls: 0
          timers: {t1: 0.5, t2: 4.0, t4: -1}
          accounts:
            - uri: sip:1001@pbx
              registrar: [sip:ok, nope]
            - display_name: lobby
        audio:
          capture_device: ""
        log: {level: loud}
        control: {socket: !secret sock}
        gpio: {}
        """) == [
        "deskphone.yaml:2: sip.listen: not a host:port: 'pbx:99999' (port must be 0-65535)",
        "deskphone.yaml:3: sip.lstn: unknown key; did you mean 'listen'?",
        "deskphone.yaml:4: sip.max_calls: must be between 1 and 16, got 0",
        "deskphone.yaml:5: sip.timers.t4: must be between 0.0 and 60.0 seconds, got -1.0",
        "deskphone.yaml:8: sip.accounts[0].registrar[1]: not a SIP URI: 'nope'",
        "deskphone.yaml:9: sip.accounts[1].uri: required key missing",
        "deskphone.yaml:11: audio.capture_device: must not be empty",
        "deskphone.yaml:12: log.level: expected one of: debug, info, warning, error; got 'loud'",
        "deskphone.yaml:13: control.socket: unsupported tag '!secret'",
        "deskphone.yaml:14: gpio: unknown key",
    ]


def test_issues_stay_on_one_line(here: Path) -> None:
    (issue,) = issues('"odd\\nkey": 1\n')
    assert issue == "deskphone.yaml:1: ['odd\\nkey']: unknown key"


# Secrets


ACCOUNTS = """\
    sip:
      accounts:
        - uri: sip:1001@pbx.example
        - uri: sip:1002@pbx.example
          password: ""
    secrets: secrets.yaml
    """
SECRETS = """\
    sip:
      accounts:
        "sip:1001@pbx.example": {password: hunter2}
        "sip:1002@pbx.example":
          password: correct-horse
    """


def test_passwords_come_from_the_secrets_file(here: Path) -> None:
    write("secrets.yaml", SECRETS)
    config = load(ACCOUNTS)
    assert config.secrets == Path("secrets.yaml")
    assert [account.password.value for account in config.sip.accounts] == [
        "hunter2",
        "correct-horse",
    ]


def test_passwords_never_show(here: Path) -> None:
    write("secrets.yaml", SECRETS)
    config = load(ACCOUNTS)
    password = config.sip.accounts[0].password
    shown = [repr(config), str(config), repr(password), str(password), f"{password}"]
    assert all("hunter2" not in text and "correct-horse" not in text for text in shown)
    assert repr(password) == "Secret('******')"
    assert repr(Secret("")) == "Secret('')"


def test_bad_secrets_are_reported_without_their_value(here: Path) -> None:
    found = issues("sip:\n  accounts:\n    - {uri: 'sip:1@pbx', password: [hunter2]}\n")
    assert found == ["deskphone.yaml:3: sip.accounts[0].password: expected a string, got a list"]
    found = issues("sip:\n  accounts:\n    - {uri: 'sip:1@pbx', password: !vault hunter2}\n")
    assert found == ["deskphone.yaml:3: sip.accounts[0].password: unsupported tag"]


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o601])
def test_a_secrets_file_others_can_access_is_an_error(here: Path, mode: int) -> None:
    write("secrets.yaml", SECRETS, mode=mode)
    assert issues(ACCOUNTS) == [
        f"secrets.yaml: mode 0{mode:o} lets group or others access it; it must be 0600 or"
        " stricter (chmod 600 secrets.yaml)"
    ]


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_private_secrets_files_are_accepted(here: Path, mode: int) -> None:
    write("secrets.yaml", SECRETS, mode=mode)
    assert load(ACCOUNTS).sip.accounts[0].password == Secret("hunter2")


def test_a_secrets_file_owned_by_someone_else_is_an_error(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write("secrets.yaml", SECRETS)
    owner = Path("secrets.yaml").stat().st_uid
    monkeypatch.setattr(os, "geteuid", lambda: owner + 1)
    assert issues(ACCOUNTS) == [
        f"secrets.yaml: owned by uid {owner}, not by the user running deskphone (uid {owner + 1})"
    ]


def test_a_missing_secrets_file_is_an_error(here: Path) -> None:
    assert issues(ACCOUNTS) == ["secrets.yaml: no such file"]


def test_secrets_file_problems(here: Path) -> None:
    write(
        "secrets.yaml",
        """\
        log: {level: debug}
        sip:
          acounts: {}
          accounts:
            "sip:1001@pbx.example": {password: 1234}
            "sip:1003@pbx.example": {password: x}
            "sip:1002@pbx.example": {password: [x], user: y}
        """,
    )
    assert issues(ACCOUNTS) == [
        "secrets.yaml:1: log: not a secret; set it in deskphone.yaml",
        "secrets.yaml:3: sip: unknown key; did you mean 'accounts'?",
        "secrets.yaml:6: sip.accounts['sip:1003@pbx.example']: no item of sip.accounts in"
        " deskphone.yaml has uri 'sip:1003@pbx.example'",
        "secrets.yaml:7: sip.accounts['sip:1002@pbx.example'].password: expected a string,"
        " got a list",
        "secrets.yaml:7: sip.accounts['sip:1002@pbx.example']: unknown key",
    ]


def test_secrets_file_issues_never_show_values_or_unknown_keys(here: Path) -> None:
    write(
        "secrets.yaml",
        """\
        sip:
          accounts:
            "sip:1001@pbx.example": {password:! "hunter2"}
            "sip:1002@pbx.example": hunter3
        """,
    )
    assert issues(ACCOUNTS) == [
        "secrets.yaml:3: sip.accounts['sip:1001@pbx.example']: unknown key",
        "secrets.yaml:4: sip.accounts['sip:1002@pbx.example']: expected a mapping, got a string",
    ]


def test_settings_that_are_not_secret_stay_in_the_main_file(here: Path) -> None:
    write(
        "secrets.yaml",
        "sip:\n  listen: 0.0.0.0:5060\n  accounts: {'sip:1001@pbx.example': {uri: x}}",
    )
    assert issues(ACCOUNTS) == [
        "secrets.yaml:2: sip.listen: not a secret; set it in deskphone.yaml",
        "secrets.yaml:3: sip.accounts['sip:1001@pbx.example'].uri: not a secret;"
        " set it in deskphone.yaml",
    ]


def test_a_secret_set_in_both_files_is_an_error(here: Path) -> None:
    write("secrets.yaml", SECRETS)
    text = ACCOUNTS.replace('password: ""', "password: inline")
    assert issues(text) == [
        "deskphone.yaml:5: sip.accounts[1].password: also set in secrets.yaml:5;"
        " keep it in one place"
    ]


def test_main_and_secrets_problems_together(here: Path) -> None:
    write("secrets.yaml", "sip: {accounts: [\n")
    text = ACCOUNTS.replace("uri: sip:1002@pbx.example", "uri: sip:1002@")
    assert issues(text) == [
        "deskphone.yaml:4: sip.accounts[1].uri: not a SIP URI: 'sip:1002@'",
        "secrets.yaml:2: YAML syntax: expected the node content, but found '<stream end>'"
        " (while parsing a flow node at line 2)",
    ]


# default.yaml, generated from the schema


def test_default_yaml_is_generated_from_the_schema() -> None:
    assert DEFAULT_YAML.read_text(encoding="utf-8") == render_default(), (
        "config/default.yaml is out of date: run `.venv/bin/python -m firmware.config"
        " --write-default`"
    )


def test_write_default(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert config_main(["--write-default", str(tmp_path / "default.yaml")]) == 0
    assert (tmp_path / "default.yaml").read_text(encoding="utf-8") == render_default()
    assert config_main([]) == 0
    assert capsys.readouterr().out == render_default()


def test_the_documented_example_account_is_valid(here: Path) -> None:
    lines = DEFAULT_YAML.read_text(encoding="utf-8").splitlines()
    start = lines.index("  # Example:")
    end = lines.index("  accounts: []")
    example = [line.replace("  #   ", "  ", 1) for line in lines[start + 1 : end]]
    text = "sip:\n" + "\n".join(example) + "\n"
    assert load(text).sip.accounts == (AccountConfig(uri="sip:1001@pbx.example"),)


def test_the_documented_secrets_example_is_valid(here: Path) -> None:
    lines = DEFAULT_YAML.read_text(encoding="utf-8").splitlines()
    start = lines.index("#   sip:")
    example = [line[4:] for line in lines[start : start + 4]]
    write("secrets.yaml", "\n".join(example) + "\n")
    config = load("sip: {accounts: [{uri: 'sip:1001@pbx.example'}]}\nsecrets: secrets.yaml")
    assert config.sip.accounts[0].password == Secret("s3cret")


# deskphone check-config


def test_check_config_valid(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write("deskphone.yaml", "sip: {max_calls: 3}")
    assert cli.main(["check-config", "deskphone.yaml"]) == 0
    assert capsys.readouterr().out == "deskphone.yaml: valid\n"


def test_check_config_invalid(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write("deskphone.yaml", "sip:\n  max_calls: 0\n  lisen: x\n")
    assert cli.main(["check-config", "deskphone.yaml"]) == 1
    assert capsys.readouterr().err == (
        "deskphone.yaml:2: sip.max_calls: must be between 1 and 16, got 0\n"
        "deskphone.yaml:3: sip.lisen: unknown key; did you mean 'listen'?\n"
    )


def test_check_config_missing_file(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check-config", "nowhere.yaml"]) == 1
    assert capsys.readouterr().err == "nowhere.yaml: no such file\n"


def test_check_config_defaults_to_the_run_path(
    here: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, "site.yaml")
    assert cli.main(["check-config"]) == 1
    assert capsys.readouterr().err == "site.yaml: no such file\n"
    write("site.yaml", "log: {level: debug}")
    assert cli.main(["check-config"]) == 0


def test_check_config_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check-config", "a.yaml", "b.yaml"]) == 2
    assert "unrecognized arguments" in capsys.readouterr().err
