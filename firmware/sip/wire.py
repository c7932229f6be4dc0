"""What the core hands the stack thread to send, and the answer to a request it cannot parse.

A request that fails to parse still deserves a reason (RFC 3261 §8.2, §21.4): the peer learns
what was wrong instead of retransmitting into silence. The answer is built from the raw
header lines, since the message never became a `Request`; without a Via it cannot be routed,
and an ACK is never answered.
"""

import re
from dataclasses import dataclass

from firmware.sip.errors import ParseError
from firmware.sip.message import reason_phrase
from firmware.sip.transport_types import Address, Target

_COPIED = re.compile(rb"^(via|v|from|f|to|t|call-id|i|cseq)[ \t]*:", re.IGNORECASE)
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")
MAX_REASON = 120


@dataclass(frozen=True, slots=True, kw_only=True)
class Outgoing:
    """Bytes for the wire. `host` may be a name; the stack thread resolves it off-thread."""

    transport: str
    host: str
    port: int
    data: bytes

    @classmethod
    def of(cls, target: Target, data: bytes) -> "Outgoing":
        return cls(
            transport=target.transport, host=target.host.strip("[]"), port=target.port, data=data
        )


def rejection_for_unparsable(
    data: bytes, error: ParseError, source: Address, transport: str
) -> Outgoing | None:
    """The error response to send back to `source`, or None when none can or should be sent."""
    if error.status is None or data.lstrip().upper().startswith(b"ACK "):
        return None
    head = data.split(b"\r\n\r\n", 1)[0].replace(b"\r\n", b"\n").split(b"\n")[1:]
    copied = [line.rstrip(b"\r") for line in head if _COPIED.match(line)]
    if not any(re.match(rb"^(via|v)[ \t]*:", line, re.IGNORECASE) for line in copied):
        return None
    detail = _UNPRINTABLE.sub("?", str(error))[:MAX_REASON]
    status_line = f"SIP/2.0 {error.status} {reason_phrase(error.status)} ({detail})\r\n"
    body = status_line.encode() + b"".join(line + b"\r\n" for line in copied)
    return Outgoing(
        transport=transport,
        host=source.host,
        port=source.port,
        data=body + b"Content-Length: 0\r\n\r\n",
    )
