"""The pure SIP core: bytes and `now` in, events and bytes out; no sockets, threads or clocks."""

from firmware.sip.errors import ParseError
from firmware.sip.uri import NameAddr, Uri, parse_name_addr, parse_uri

__all__ = ["NameAddr", "ParseError", "Uri", "parse_name_addr", "parse_uri"]
