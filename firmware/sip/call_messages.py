"""The messages of the INVITE session usage: the first INVITE, what our responses add, and
reading what a peer's requests ask for (extensions it requires, session timers, DTMF in INFO).

Kept apart from the state machine in `call` so each half reads on its own: nothing here
remembers anything, every function is given all it needs.
"""

import re
from collections.abc import Sequence

from firmware.sip.errors import ParseError
from firmware.sip.headers import Via, split_list
from firmware.sip.message import Message, Request, Response
from firmware.sip.registration_messages import MAX_FORWARDS, loose_route, our_via
from firmware.sip.transport_types import DEFAULT_PORTS, Address, Target
from firmware.sip.uri import NameAddr, Uri

ALLOW = ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "UPDATE", "INFO")
"""The methods a call answers (REFER is refused with 501: the phone does no transfers)."""
SUPPORTED = ("timer",)
"""RFC 4028 session timers: we answer refreshes and echo Session-Expires; we never refresh."""
SDP = "application/sdp"
DTMF_TYPES = ("application/dtmf-relay", "application/dtmf")
MIN_SESSION_EXPIRES = 90
"""RFC 4028 §4: the smallest session interval a UA may accept."""
KNOWN_METHODS = frozenset(
    {"PRACK", "SUBSCRIBE", "NOTIFY", "PUBLISH", "MESSAGE", "REGISTER", "OPTIONS"}
)
"""Methods we know but do not serve inside a call: 405 with Allow, not 501."""

_DTMF_EVENTS = "0123456789*#ABCD"
"""RFC 4733 event numbers 0-15, which some senders write instead of the digit."""
_SIGNAL = re.compile(r"^\s*signal\s*=\s*(\S+)\s*$", re.IGNORECASE | re.MULTILINE)


def via_for(contact: Uri, target: Target, branch: str) -> Via:
    """Our Via towards `target`, sent-by taken from our Contact, with `rport` (RFC 3581)."""
    port = contact.port or DEFAULT_PORTS[target.transport]
    return our_via(target, Address(contact.host, port), branch)


def build_invite(
    *,
    request_uri: Uri,
    via: Via,
    route: Uri | None,
    from_: NameAddr,
    to: NameAddr,
    call_id: str,
    cseq: int,
    contact: Uri,
    user_agent: str,
    offer: bytes,
    credentials: Sequence[tuple[str, str]],
) -> Request:
    """The INVITE that starts a call, with our SDP offer; `route` is an outbound proxy."""
    headers = [("Via", str(via)), ("Max-Forwards", MAX_FORWARDS)]
    if route is not None:
        headers.append(("Route", f"<{loose_route(route)}>"))
    headers += [
        ("From", str(from_)),
        ("To", str(to)),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} INVITE"),
        ("Contact", f"<{contact}>"),
        ("Allow", ", ".join(ALLOW)),
        ("User-Agent", user_agent),
        *credentials,
        ("Content-Type", SDP),
    ]
    return Request("INVITE", request_uri, headers, offer)


def has_sdp(message: Message) -> bool:
    """True when the body is SDP (a body without Content-Type is taken to be SDP, §13.2.1)."""
    if not message.body:
        return False
    try:
        content_type = message.content_type
    except ParseError:
        return False
    return content_type is None or content_type.mime == SDP


def unsupported_extensions(request: Request) -> list[str]:
    """The option tags in Require we do not support (answer 420 listing them, §8.2.2.3)."""
    required = [tag for value in request.headers.get_all("Require") for tag in split_list(value)]
    return [tag for tag in required if tag.strip().lower() not in SUPPORTED]


def session_expires(request: Request) -> tuple[int, str | None] | None:
    """The interval and `refresher` of a Session-Expires header (RFC 4028 §4), or None when
    there is none or it cannot be read."""
    value = request.headers.get("Session-Expires")
    if value is None:
        return None
    interval, _, params = value.partition(";")
    if not interval.strip().isdigit():
        return None
    refresher = None
    for param in params.split(";"):
        name, _, given = param.partition("=")
        if name.strip().lower() == "refresher" and given.strip().lower() in ("uac", "uas"):
            refresher = given.strip().lower()
    return min(int(interval), 2**31 - 1), refresher


def add_session_timer(response: Response, interval: int, refresher: str | None) -> None:
    """Echo the session interval in a 2xx (RFC 4028 §9): the refresher the request named, or
    the peer (uac) when it named none, so we never have to refresh ourselves."""
    response.headers.add("Require", "timer")
    response.headers.add("Session-Expires", f"{interval};refresher={refresher or 'uac'}")


def dtmf_digit(content_type: str, body: bytes) -> str | None:
    """The digit of an INFO body: `Signal=5` lines (application/dtmf-relay) or a bare digit
    (application/dtmf); RFC 4733 event numbers 0-15 are read as their digits. None if the
    body holds no digit we know."""
    text = body.decode("ascii", "replace")
    if content_type == "application/dtmf-relay":
        match = _SIGNAL.search(text)
        if match is None:
            return None
        text = match[1]
    text = text.strip().upper()
    if text.isdigit() and len(text) <= 2 and int(text) < len(_DTMF_EVENTS):
        return _DTMF_EVENTS[int(text)]
    return text if len(text) == 1 and text in _DTMF_EVENTS else None
