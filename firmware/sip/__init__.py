"""The pure SIP core: bytes and `now` in, events and bytes out; no sockets, threads or clocks."""

from firmware.sip.errors import ParseError
from firmware.sip.framing import StreamFramer
from firmware.sip.headers import Headers
from firmware.sip.message import Request, Response
from firmware.sip.parser import parse_message
from firmware.sip.uri import NameAddr, Uri, parse_name_addr, parse_uri

__all__ = [
    "Headers",
    "NameAddr",
    "ParseError",
    "Request",
    "Response",
    "StreamFramer",
    "Uri",
    "parse_message",
    "parse_name_addr",
    "parse_uri",
]
