"""Every setting of deskphone: the one source of truth for the loader and for default.yaml.

To add a setting, add one field to a section below:
`name: type = field(default=..., metadata=about(help, check=...))`; the annotation is the type
the loader converts to. Then regenerate the documented file with `python -m firmware.config
--write-default` (a test fails until you do).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Literal

from firmware.config import checks
from firmware.config.fields import Secret, SettingError, about

VERSION = metadata.version("deskphone")

Transport = Literal["udp", "tcp"]
LogLevel = Literal["debug", "info", "warning", "error"]


def _user_agent(text: str) -> str:
    return checks.nonempty_header_text(text.replace("{version}", VERSION))


@dataclass(frozen=True, kw_only=True)
class TimersConfig:
    t1: float = field(
        default=0.5,
        metadata=about(
            "T1, the round-trip time estimate: retransmissions start at T1 and transactions"
            " give up after 64*T1.",
            check=checks.between(0.01, 10.0, "seconds"),
        ),
    )
    t2: float = field(
        default=4.0,
        metadata=about(
            "T2, the longest interval between retransmissions of non-INVITE requests and of"
            " INVITE responses; at least t1.",
            check=checks.between(0.01, 60.0, "seconds"),
        ),
    )
    t4: float = field(
        default=5.0,
        metadata=about(
            "T4, how long a message may stay in the network.",
            check=checks.between(0.0, 60.0, "seconds"),
        ),
    )

    def __post_init__(self) -> None:
        if self.t2 < self.t1:
            raise SettingError("t2", f"must be at least t1 ({self.t1}), got {self.t2}")


@dataclass(frozen=True, kw_only=True)
class AccountConfig:
    uri: str = field(
        metadata=about(
            "the account's address, a SIP URI with a user; required.",
            example="sip:1001@pbx.example",
            check=checks.address_of_record,
        )
    )
    password: Secret = field(
        default=Secret(""),
        metadata=about("digest password; better kept in the secrets file (see `secrets`)."),
    )
    auth_user: str | None = field(
        default=None,
        metadata=about(
            "user name for digest authentication; null means the user part of uri.",
            check=checks.nonempty_header_text,
        ),
    )
    display_name: str | None = field(
        default=None,
        metadata=about("name shown to the called party; null for none.", check=checks.header_text),
    )
    registrar: tuple[str, ...] = field(
        default=(),
        metadata=about(
            "a SIP URI, or a list of them tried in order, to register with; empty or null"
            " means the host of uri.",
            check=checks.sip_uri,
            one_or_many=True,
        ),
    )
    outbound_proxy: str | None = field(
        default=None,
        metadata=about(
            "a SIP URI every request of this account is sent through; null for none.",
            check=checks.sip_uri,
        ),
    )
    auto_answer: bool = field(
        default=False, metadata=about("answer incoming calls on this account at once.")
    )


@dataclass(frozen=True, kw_only=True)
class SipConfig:
    listen: str = field(
        default="0.0.0.0:5060",
        metadata=about(
            'Local address for UDP and TCP as host:port; "[::]:5060" is dual-stack and port 0'
            " picks an ephemeral port.",
            check=checks.host_port,
        ),
    )
    transports: tuple[Transport, ...] = field(
        default=("udp", "tcp"),
        metadata=about("Transports to listen on: udp, tcp.", min_items=1),
    )
    trusted: tuple[str, ...] = field(
        default=("127.0.0.0/8",),
        metadata=about(
            "Networks (CIDR) whose requests are accepted outside a registration, e.g. an"
            " intercom paired with a phone without a PBX.",
            check=checks.network,
        ),
    )
    user_agent: str = field(
        default=f"deskphone/{VERSION}",
        metadata=about(
            "User-Agent header; {version} is replaced by the firmware version.",
            check=_user_agent,
            shown_default="deskphone/{version}",
        ),
    )
    max_calls: int = field(
        default=2,
        metadata=about(
            "Most calls at once; further INVITEs are rejected.", check=checks.between(1, 16)
        ),
    )
    reject_status: int = field(
        default=486,
        metadata=about(
            "Status for rejected calls: 486 Busy Here, 603 Decline or any 400-699.",
            check=checks.between(400, 699),
        ),
    )
    timers: TimersConfig = field(
        default_factory=TimersConfig,
        metadata=about("Transaction timers of RFC 3261, in seconds."),
    )
    register_expires: int = field(
        default=600,
        metadata=about(
            "Registration lifetime asked of the registrar, in seconds.",
            check=checks.between(60, 86400, "seconds"),
        ),
    )
    keepalive_interval: int = field(
        default=25,
        metadata=about(
            "Seconds between keep-alives that hold NAT bindings open; 0 disables them.",
            check=checks.between(0, 3600, "seconds"),
        ),
    )
    register_retry_min: float = field(
        default=5.0,
        metadata=about(
            "Seconds before the first retry after a failed registration; each further failure"
            " doubles the wait (with jitter) up to register_retry_max. It never gives up.",
            check=checks.between(0.1, 3600.0, "seconds"),
        ),
    )
    register_retry_max: float = field(
        default=300.0,
        metadata=about(
            "Longest wait between registration retries, in seconds; at least register_retry_min.",
            check=checks.between(0.1, 86400.0, "seconds"),
        ),
    )
    accounts: tuple[AccountConfig, ...] = field(
        default=(),
        metadata=about("Accounts to register, each a mapping with these keys:", key="uri"),
    )

    def __post_init__(self) -> None:
        if self.register_retry_max < self.register_retry_min:
            raise SettingError(
                "register_retry_max",
                f"must be at least register_retry_min ({self.register_retry_min}),"
                f" got {self.register_retry_max}",
            )


@dataclass(frozen=True, kw_only=True)
class AudioConfig:
    capture_device: str = field(
        default="default",
        metadata=about("ALSA PCM to record from, used verbatim.", check=checks.nonempty),
    )
    playback_device: str = field(
        default="default",
        metadata=about("ALSA PCM to play to, used verbatim.", check=checks.nonempty),
    )


@dataclass(frozen=True, kw_only=True)
class LogConfig:
    level: LogLevel = field(
        default="info", metadata=about("Least severe level logged: debug, info, warning, error.")
    )
    sip_trace: bool = field(
        default=False, metadata=about("Log every SIP message sent and received.")
    )


@dataclass(frozen=True, kw_only=True)
class ControlConfig:
    socket: Path | None = field(
        default=None,
        metadata=about(
            "Path of the JSON-lines control socket, or null for none.",
            check=checks.unix_socket_path,
        ),
    )


@dataclass(frozen=True, kw_only=True)
class Config:
    sip: SipConfig = field(default_factory=SipConfig, metadata=about("SIP user agent."))
    audio: AudioConfig = field(default_factory=AudioConfig, metadata=about("Sound devices."))
    log: LogConfig = field(default_factory=LogConfig, metadata=about("Logging."))
    control: ControlConfig = field(
        default_factory=ControlConfig, metadata=about("Local control interface.")
    )
    secrets: Path | None = field(
        default=None,
        metadata=about(
            "Path of the secrets file, or null for none. It must be mode 0600 (or stricter)"
            " and owned by the user deskphone runs as. It mirrors this file but holds only"
            " secrets, and names an account by its uri instead of its position:\n"
            "  sip:\n"
            "    accounts:\n"
            '      "sip:1001@pbx.example":\n'
            '        password: "s3cret"\n'
            "A secret set there must be left out (or empty) here.",
        ),
    )
