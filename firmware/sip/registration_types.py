"""What goes into and comes out of the registration usage: its settings, states, the requests
it asks the core to send and the events it reports. The machine itself is in `registration`,
which re-exports all of these.
"""

from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from firmware.sip.headers import MAX_DELTA_SECONDS
from firmware.sip.message import Request
from firmware.sip.transport_types import Target
from firmware.sip.uri import Uri

DEFAULT_ALLOW = ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "MESSAGE", "NOTIFY")


@dataclass(frozen=True, kw_only=True)
class RegistrationSettings:
    """One account's registration, in plain values (the core does not read the config)."""

    aor: Uri
    registrars: tuple[Uri, ...]
    outbound_proxy: Uri | None = None
    username: str
    password: str = field(repr=False)
    display_name: str | None = None
    expires: int = 600
    keepalive_interval: float = 25.0
    retry_min: float = 5.0
    retry_max: float = 300.0
    user_agent: str
    allow: tuple[str, ...] = DEFAULT_ALLOW

    def __post_init__(self) -> None:
        if not self.aor.is_sip or not self.aor.user:
            raise ValueError(f"the address of record must be a SIP URI with a user: {self.aor}")
        if not self.registrars:
            raise ValueError("at least one registrar is needed")
        if not 1 <= self.expires <= MAX_DELTA_SECONDS:
            raise ValueError(f"expires must be 1..{MAX_DELTA_SECONDS}, got {self.expires}")
        if self.keepalive_interval < 0:
            raise ValueError(f"keepalive_interval cannot be negative: {self.keepalive_interval}")
        if not 0 < self.retry_min <= self.retry_max:
            raise ValueError(
                f"need 0 < retry_min <= retry_max, got {self.retry_min} and {self.retry_max}"
            )


class RegistrationState(StrEnum):
    IDLE = "idle"
    REGISTERING = "registering"
    REGISTERED = "registered"
    RETRY_WAIT = "retry-wait"
    UNREGISTERING = "unregistering"
    UNREGISTERED = "unregistered"


class RequestPurpose(StrEnum):
    REGISTER = "register"
    """A REGISTER, un-REGISTER included."""
    KEEPALIVE = "keepalive"
    """An OPTIONS keep-alive on UDP."""


class OutgoingRequest(NamedTuple):
    """A request for the core to send as a new client transaction to `target`."""

    request: Request
    target: Target
    purpose: RequestPurpose


@dataclass(frozen=True, kw_only=True)
class Registered:
    """The registrar holds `contact` for `aor` for `expires` seconds; sent after every
    successful REGISTER, refreshes included. `note` says what was odd about the 2xx."""

    aor: Uri
    contact: Uri
    expires: int
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class RegistrationFailed:
    """A REGISTER failed; the next attempt goes out in `retry_in` seconds (0: at once, to the
    next registrar). `status` is None for a timeout or a transport failure."""

    aor: Uri
    status: int | None
    reason: str
    retry_in: float


@dataclass(frozen=True, kw_only=True)
class Unregistered:
    """The registration ended after `stop()` (whether or not the registrar confirmed)."""

    aor: Uri


RegistrationEvent = Registered | RegistrationFailed | Unregistered
