"""What goes into and comes out of the INVITE session usage: its states, close reasons and the
events it reports. The machine itself is in `call`, which re-exports all of these.

Every event carries `call_id`, the caller-supplied handle of the `Call` (not the SIP Call-ID),
so the control socket can name the call without knowing SIP.
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from firmware.sip.sdp import MediaSession
from firmware.sip.uri import Uri

Side = Literal["local", "remote"]


class CallState(StrEnum):
    OUTGOING = "outgoing"
    """Our INVITE is out; nothing beyond 100 Trying has come back."""
    RINGING = "ringing"
    """Incoming and not yet answered, or a 180 came back for ours."""
    EARLY = "early"
    """A provisional response brought SDP: early media may flow."""
    ESTABLISHED = "established"
    TERMINATING = "terminating"
    """A BYE or CANCEL is out and its outcome not yet known."""
    CLOSED = "closed"


class CloseReason(StrEnum):
    LOCAL_HANGUP = "local_hangup"
    REMOTE_HANGUP = "remote_hangup"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    BUSY = "busy"
    TIMEOUT = "timeout"
    RTP_TIMEOUT = "rtp_timeout"
    ERROR = "error"


@dataclass(frozen=True, slots=True, kw_only=True)
class CallIncoming:
    call_id: str
    remote: Uri
    display: str | None
    account: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallOutgoing:
    call_id: str
    remote: Uri
    display: str | None
    account: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRinging:
    """The callee is alerted (180 without SDP)."""

    call_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CallProgress:
    """A provisional response with SDP: `media` is the early media session to play."""

    call_id: str
    media: MediaSession


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEstablished:
    call_id: str
    media: MediaSession | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallHeld:
    call_id: str
    by: Side
    media: MediaSession | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallResumed:
    call_id: str
    by: Side
    media: MediaSession | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallClosed:
    """The call is over; `status` is the SIP status that ended it, when one did."""

    call_id: str
    reason: CloseReason
    status: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class DtmfReceived:
    """A digit the peer sent in an INFO request (RFC 4733 digits come over RTP instead)."""

    call_id: str
    digit: str


CallEvent = (
    CallIncoming
    | CallOutgoing
    | CallRinging
    | CallProgress
    | CallEstablished
    | CallHeld
    | CallResumed
    | CallClosed
    | DtmfReceived
)
