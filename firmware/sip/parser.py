"""Bytes to `Request`/`Response`: the one entry point for everything a peer sends.

The header block is split once and kept as (canonical name, unfolded value) strings; only what a
UA must check to reject a malformed message is checked here (start line, Via, From, To, Call-ID,
CSeq, Max-Forwards, Expires, Contact, Content-Length), without building typed values; the
`Headers` accessors build (and cache) them when the layers above ask.
"""

import re

from firmware.sip.errors import ParseError
from firmware.sip.headers import (
    CANONICAL_BY_LOWER,
    MAX_DELTA_SECONDS,
    Headers,
    parse_bounded_int,
    parse_call_id,
    parse_contact_list,
    parse_cseq,
    parse_via,
    split_list,
)
from firmware.sip.message import Request, Response
from firmware.sip.uri import parse_name_addr, parse_uri

MAX_MESSAGE_SIZE = 65535
"""The largest message `parse_message` accepts by default: the UDP limit (RFC 3261 §18.1.1)."""

_FOLD = re.compile(r"\r\n[ \t]+")
_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_SIP_VERSION = re.compile(r"SIP/[0-9]+\.[0-9]+", re.IGNORECASE)


def parse_message(data: bytes, *, max_size: int = MAX_MESSAGE_SIZE) -> Request | Response:
    """Parse one complete message (a datagram, or what `StreamFramer` cut from a stream).

    Raises ParseError whose `status` is 400, 505 or 513 for a malformed request and None for
    a malformed response. Octets after Content-Length are ignored; without Content-Length the
    body is the rest of `data` (§18.3). Leading CRLFs are skipped (§7.5).
    """
    if data[:1] in (b"\r", b"\n"):
        data = data.lstrip(b"\r\n")
    if data[:4].upper() == b"SIP/":
        try:
            return _parse(data, max_size, None)
        except ParseError as error:
            raise error.for_response() from None
    return _parse(data, max_size, 400)


def _parse(data: bytes, max_size: int, error_status: int | None) -> Request | Response:
    if len(data) > max_size:
        raise ParseError(f"message of {len(data)} bytes exceeds the limit of {max_size}", 513)
    end = data.find(b"\r\n\r\n")
    if end < 0:
        raise ParseError("header section not terminated by an empty line")
    head = data[:end].decode("utf-8", "surrogateescape")
    if "\r\n " in head or "\r\n\t" in head:
        head = _FOLD.sub(" ", head)
    lines = head.split("\r\n")
    if head.count("\r") != len(lines) - 1 or head.count("\n") != len(lines) - 1:
        raise ParseError("bare CR or LF in the header section")
    if error_status is None:
        status, reason = _status_line(lines[0])
        entries, content_length, _ = _header_entries(lines)
        return Response(
            status, reason, Headers.from_parsed(entries), _body(data, end, content_length)
        )
    method, uri_text = _request_line(lines[0])
    entries, content_length, cseq_method = _header_entries(lines)
    if cseq_method != method:
        raise ParseError(f"CSeq method {cseq_method} does not match request method {method}")
    body = _body(data, end, content_length)
    return Request.parsed(method, uri_text, Headers.from_parsed(entries), body)


def _body(data: bytes, end: int, content_length: int | None) -> bytes:
    if content_length is None:
        return data[end + 4 :]
    if end + 4 + content_length > len(data):
        raise ParseError(
            f"Content-Length {content_length} exceeds the {len(data) - end - 4} bytes of body"
        )
    return data[end + 4 : end + 4 + content_length]


def _header_entries(lines: list[str]) -> tuple[list[tuple[str, str, str]], int | None, str]:
    """The header lines (after the start line) as entries, without Content-Length, whose value
    is returned apart, with the CSeq method; every header a UA must check is checked here.

    A value is first matched against a fast pattern that accepts only a subset of what the full
    parser accepts (everyday shapes: no escapes, no IPv6, short numbers); anything else goes
    through the full parser, so the verdict is always the full parser's and the accessors of a
    returned message cannot fail.
    """
    entries: list[tuple[str, str, str]] = []
    seen = 0
    content_length: int | None = None
    present = 0
    cseq_method = ""
    contact_lines = 0
    wildcard = False
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            raise ParseError(f"header line without ':': {line[:60]!r}")
        value = value.strip(" \t")
        known = _KEYS.get(name)
        if known is None:
            name = name.rstrip(" \t")
            known = _KEYS.get(name) or _KEYS.get(name.lower())
            if known is None:
                if not _TOKEN.fullmatch(name):
                    raise ParseError(f"invalid header name {name[:60]!r}")
                entries.append((name.lower(), name, value))
                continue
        key, canonical, kind = known
        if not kind:
            entries.append((key, canonical, value))
            continue
        if kind & _SINGLETONS:
            if seen & kind:
                raise ParseError(f"more than one {canonical} header")
            seen |= kind
        if kind == _CONTENT_LENGTH:
            content_length = _content_length(value)
            continue
        entries.append((key, canonical, value))
        if kind == _VIA:
            if "," in value:
                vias = split_list(value)
                for item in vias:
                    parse_via(item)
                if vias:
                    present |= _VIA
            elif value:
                present |= _VIA
                if not plain_via(value):
                    parse_via(value)
        elif kind & (_FROM | _TO):
            present |= kind
            if not plain_name_addr(value):
                parse_name_addr(value)
        elif kind == _CSEQ:
            present |= _CSEQ
            match = _CSEQ_FAST.fullmatch(value)
            cseq_method = match[2] if match else parse_cseq(value).method
        elif kind == _CALL_ID:
            present |= _CALL_ID
            parse_call_id(value)
        elif kind == _CONTACT:
            contact_lines += 1
            if value == "*":
                wildcard = True
            elif not plain_contact(value):
                parse_contact_list(value)
        elif kind == _MAX_FORWARDS:
            if not (len(value) <= 2 and value.isascii() and value.isdigit()):
                parse_bounded_int(value, 255, "Max-Forwards")
        elif kind == _EXPIRES and not (len(value) <= 9 and value.isascii() and value.isdigit()):
            parse_bounded_int(value, MAX_DELTA_SECONDS, "Expires")
    if present != _REQUIRED:
        for flag, required in _REQUIRED_NAMES:
            if not present & flag:
                raise ParseError(f"missing {required} header")
    if wildcard and contact_lines > 1:
        raise ParseError("Contact: * must be the only Contact")
    return entries, content_length, cseq_method


def _content_length(value: str) -> int:
    if not value.isdigit() or not value.isascii():
        raise ParseError(f"Content-Length is not a number: {value[:40]!r}")
    if len(value) > 10:
        raise ParseError(f"Content-Length too large: {value[:40]!r}")
    return int(value)


def _request_line(line: str) -> tuple[str, str]:
    """(method, Request-URI text) of a well-formed request line."""
    match = _REQUEST_LINE_FAST.fullmatch(line)
    if match is not None:
        return match[1], match[2]
    parts = line.split(" ")
    if len(parts) != 3:
        raise ParseError(f"request line is not 'Method SP Request-URI SP SIP/2.0': {line[:80]!r}")
    method, uri_text, version = parts
    if version.upper() != "SIP/2.0":
        if _SIP_VERSION.fullmatch(version):
            raise ParseError(f"SIP version {version} is not supported", 505)
        raise ParseError(f"malformed SIP version {version[:20]!r}")
    if not _TOKEN.fullmatch(method):
        raise ParseError(f"method is not a token: {method[:40]!r}")
    try:
        uri = parse_uri(uri_text, any_scheme=True)
    except ParseError as error:
        raise ParseError(f"Request-URI: {error}") from None
    if uri.headers:
        raise ParseError(f"Request-URI must not carry headers: {uri_text[:80]!r}")
    return method, uri_text


def _status_line(line: str) -> tuple[int, str]:
    version, _, rest = line.partition(" ")
    code, _, reason = rest.partition(" ")
    if version.upper() != "SIP/2.0":
        raise ParseError(f"SIP version {version[:20]!r} is not supported")
    if not (len(code) == 3 and code.isdigit() and code.isascii() and "100" <= code <= "699"):
        raise ParseError(f"status code {code[:20]!r} is not in 100-699")
    return int(code), reason


def plain_via(value: str) -> bool:
    """True for a Via value of the everyday shape, which `parse_via` is sure to accept."""
    return _VIA_FAST.fullmatch(value) is not None


def plain_name_addr(value: str) -> bool:
    """True for a From/To value of the everyday shape, which `parse_name_addr` is sure to
    accept."""
    return _NAME_ADDR_FAST.fullmatch(value) is not None


def plain_contact(value: str) -> bool:
    """True for one Contact value of the everyday shape, whose `expires` is a short number
    and `q` a qvalue: `parse_contact_list` is sure to accept it."""
    return _CONTACT_FAST.fullmatch(value) is not None


(
    _VIA,
    _FROM,
    _TO,
    _CALL_ID,
    _CSEQ,
    _CONTACT,
    _MAX_FORWARDS,
    _EXPIRES,
    _CONTENT_LENGTH,
    _CONTENT_TYPE,
) = (1 << n for n in range(10))
_SINGLETONS = (
    _FROM | _TO | _CALL_ID | _CSEQ | _MAX_FORWARDS | _EXPIRES | _CONTENT_LENGTH | _CONTENT_TYPE
)
"""The headers a message may carry only once (RFC 3261 §7.3.1: not comma-separated lists)."""
_CHECKED = {
    "via": _VIA,
    "from": _FROM,
    "to": _TO,
    "call-id": _CALL_ID,
    "cseq": _CSEQ,
    "contact": _CONTACT,
    "max-forwards": _MAX_FORWARDS,
    "expires": _EXPIRES,
    "content-length": _CONTENT_LENGTH,
    "content-type": _CONTENT_TYPE,
}
_REQUIRED_NAMES = (
    (_VIA, "Via"),
    (_FROM, "From"),
    (_TO, "To"),
    (_CALL_ID, "Call-ID"),
    (_CSEQ, "CSeq"),
)
_REQUIRED = _VIA | _FROM | _TO | _CALL_ID | _CSEQ

_T = r"[A-Za-z0-9\-.!%*_+`'~]+"
_HOST_PORT = r"[A-Za-z0-9\-_.]+(?::[1-5]?[0-9]{1,4})?"
_URI_PARAM = r"[A-Za-z0-9\-_.!~*'()\[\]/:&+$]+"
_SIP_URI = (
    rf"sips?:(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]+(?::[A-Za-z0-9\-_.!~*'()&=+$,]*)?@)?"
    rf"{_HOST_PORT}(?:;{_URI_PARAM}(?:={_URI_PARAM})?)*"
)
_ADDR_SPEC = rf"sips?:(?:[A-Za-z0-9\-_.!~*'()&=+$/]+(?::[A-Za-z0-9\-_.!~*'()&=+$]*)?@)?{_HOST_PORT}"
_VALUE = r"[A-Za-z0-9\-.!%*_+`'~:\[\]]+"
_PARAMS = rf"(?:;{_T}(?:={_VALUE})?)*"
_NAME_ADDR_HEAD = rf'(?:(?:"[^"\\\r\n]*"|{_T}(?:[ \t]+{_T})*)[ \t]*)?<{_SIP_URI}>|{_ADDR_SPEC}'
_NAME_ADDR_FAST = re.compile(rf"(?:{_NAME_ADDR_HEAD}){_PARAMS}")
_CONTACT_PARAMS = (
    rf"(?:;(?!(?i:expires|q)=){_T}(?:={_VALUE})?"
    r"|;(?i:expires)=[0-9]{1,9}|;(?i:q)=(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?))*"
)
_CONTACT_FAST = re.compile(rf"(?:{_NAME_ADDR_HEAD}){_CONTACT_PARAMS}")
_VIA_PARAMS = rf"(?:;(?!(?i:rport)=){_T}(?:={_VALUE})?|;(?i:rport)=[0-9]{{1,4}})*"
_VIA_FAST = re.compile(rf"SIP/2\.0/[A-Za-z]+ {_HOST_PORT}{_VIA_PARAMS}")
_REQUEST_LINE_FAST = re.compile(rf"([A-Z]+) ({_SIP_URI}) SIP/2\.0")
_CSEQ_FAST = re.compile(rf"([0-9]{{1,9}}) ({_T})")
_KEYS = {
    spelling: (name.lower(), name, _CHECKED.get(name.lower(), 0))
    for lowered, name in CANONICAL_BY_LOWER.items()
    for spelling in (lowered, name, lowered.upper())
}
"""Header name as written (canonical, lower or upper case, compact) -> (key, canonical name,
what `_header_entries` checks in it)."""
