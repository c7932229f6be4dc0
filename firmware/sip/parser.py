"""Bytes to `Request`/`Response`: the one entry point for everything a peer sends.

The header block is split once and kept as (canonical name, unfolded value) strings; only what a
UA must check to reject a malformed message is checked here (start line, Via, From, To, Call-ID,
CSeq, Max-Forwards, Expires, Contact, Content-Length), without building typed values; the
`Headers` accessors build (and cache) them when the layers above ask.
"""

import re
from dataclasses import dataclass

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
from firmware.sip.uri import Uri, parse_name_addr, parse_uri

MAX_MESSAGE_SIZE = 65535
"""The largest message `parse_message` accepts by default: the UDP limit (RFC 3261 §18.1.1)."""

_FOLD = re.compile(r"\r\n[ \t]+")
_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_SIP_VERSION = re.compile(r"SIP/[0-9]+\.[0-9]+", re.IGNORECASE)
_KEYS = {
    spelling: (name.lower(), name)
    for lowered, name in CANONICAL_BY_LOWER.items()
    for spelling in (lowered, name, lowered.upper())
}
"""Header name as written (canonical, lower or upper case, compact) -> (key, canonical name)."""
_SINGLETONS = frozenset(
    ("call-id", "cseq", "from", "to", "max-forwards", "expires", "content-length", "content-type")
)


def parse_message(data: bytes, *, max_size: int = MAX_MESSAGE_SIZE) -> Request | Response:
    """Parse one complete message (a datagram, or what `StreamFramer` cut from a stream).

    Raises ParseError whose `status` is 400, 505 or 513 for a malformed request and None for
    a malformed response. Octets after Content-Length are ignored; without Content-Length the
    body is the rest of `data` (§18.3). Leading CRLFs are skipped (§7.5).
    """
    if data[:1] in (b"\r", b"\n"):
        data = data.lstrip(b"\r\n")
    is_response = data[:4].upper() == b"SIP/"
    error_status = None if is_response else 400
    if len(data) > max_size:
        raise ParseError(
            f"message of {len(data)} bytes exceeds the limit of {max_size}",
            None if is_response else 513,
        )
    end = data.find(b"\r\n\r\n")
    if end < 0:
        raise ParseError("header section not terminated by an empty line", error_status)
    head = data[:end].decode("utf-8", "surrogateescape")
    if "\r\n " in head or "\r\n\t" in head:
        head = _FOLD.sub(" ", head)
    crlf = head.count("\r\n")
    if head.count("\r") != crlf or head.count("\n") != crlf:
        raise ParseError("bare CR or LF in the header section", error_status)
    lines = head.split("\r\n")
    start = _response_line(lines[0]) if is_response else _request_line(lines[0])
    entries, content_length = _header_entries(lines, error_status)
    rest = data[end + 4 :]
    if content_length is None:
        body = rest
    else:
        if content_length > len(rest):
            raise ParseError(
                f"Content-Length {content_length} exceeds the {len(rest)} bytes of body",
                error_status,
            )
        body = rest[:content_length]
    if isinstance(start, tuple):
        method, uri = start
        cseq_method = _check_core(entries, 400)
        if cseq_method != method:
            raise ParseError(f"CSeq method {cseq_method} does not match request method {method}")
        return Request(method, uri, Headers.from_parsed(entries), body)
    _check_core(entries, None)
    return Response(start.status, start.reason, Headers.from_parsed(entries), body)


def _header_entries(
    lines: list[str], error_status: int | None
) -> tuple[list[tuple[str, str, str]], int | None]:
    """The header lines (after the start line) as entries, without Content-Length, whose
    value is returned apart."""
    entries: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    content_length: int | None = None
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            raise ParseError(f"header line without ':': {line[:60]!r}", error_status)
        known = _KEYS.get(name)
        if known is None:
            name = name.rstrip(" \t")
            known = _KEYS.get(name) or _KEYS.get(name.lower())
            if known is None:
                if not _TOKEN.fullmatch(name):
                    raise ParseError(f"invalid header name {name[:60]!r}", error_status)
                entries.append((name.lower(), name, value.strip(" \t")))
                continue
        key = known[0]
        if key in _SINGLETONS:
            if key in seen:
                raise ParseError(f"more than one {known[1]} header", error_status)
            seen.add(key)
            if key == "content-length":
                content_length = _content_length(value.strip(" \t"), error_status)
                continue
        entries.append((key, known[1], value.strip(" \t")))
    return entries, content_length


def _content_length(value: str, error_status: int | None) -> int:
    if not value.isdigit() or not value.isascii():
        raise ParseError(f"Content-Length is not a number: {value[:40]!r}", error_status)
    if len(value) > 10:
        raise ParseError(f"Content-Length too large: {value[:40]!r}", error_status)
    return int(value)


def _request_line(line: str) -> tuple[str, Uri]:
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
    return method, uri


@dataclass(frozen=True, slots=True)
class _StatusLine:
    status: int
    reason: str


def _response_line(line: str) -> _StatusLine:
    version, _, rest = line.partition(" ")
    code, _, reason = rest.partition(" ")
    if version.upper() != "SIP/2.0":
        raise ParseError(f"SIP version {version[:20]!r} is not supported", None)
    if not (len(code) == 3 and code.isdigit() and code.isascii() and "100" <= code <= "699"):
        raise ParseError(f"status code {code[:20]!r} is not in 100-699", None)
    return _StatusLine(int(code), reason)


def _check_core(entries: list[tuple[str, str, str]], error_status: int | None) -> str:
    """Reject what a UA must answer with 400; return the CSeq method.

    Each value is first matched against a fast pattern that accepts only a subset of what the
    full parser accepts (common shapes: no escapes, no IPv6, short numbers); anything else goes
    through the full parser, so the verdict is always the full parser's, and the accessors of a
    returned message cannot fail.
    """
    try:
        return _check_entries(entries)
    except ParseError as error:
        if error_status is None:
            raise error.for_response() from None
        raise


def _check_entries(entries: list[tuple[str, str, str]]) -> str:
    present = 0
    cseq_method = ""
    contact_lines = 0
    wildcard = False
    for key, _, value in entries:
        kind = _CHECKED.get(key)
        if kind is None:
            continue
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
        elif kind == _CONTACT:
            contact_lines += 1
            if value == "*":
                wildcard = True
            elif not plain_contact(value):
                parse_contact_list(value)
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
        elif kind == _MAX_FORWARDS:
            if not (len(value) <= 2 and value.isascii() and value.isdigit()):
                parse_bounded_int(value, 255, "Max-Forwards")
        elif not (len(value) <= 9 and value.isascii() and value.isdigit()):
            parse_bounded_int(value, MAX_DELTA_SECONDS, "Expires")
    if present != _REQUIRED:
        for flag, name in _REQUIRED_NAMES:
            if not present & flag:
                raise ParseError(f"missing {name} header")
    if wildcard and contact_lines > 1:
        raise ParseError("Contact: * must be the only Contact")
    return cseq_method


def plain_via(value: str) -> bool:
    """True for a Via value of the everyday shape, which `parse_via` is sure to accept."""
    if not _VIA_FAST.fullmatch(value):
        return False
    rport = _RPORT.search(value)
    return rport is None or (len(rport[1]) <= 4 and rport[1].isdigit())


def plain_name_addr(value: str) -> bool:
    """True for a From/To value of the everyday shape, which `parse_name_addr` is sure to
    accept."""
    return _NAME_ADDR_FAST.fullmatch(value) is not None


def plain_contact(value: str) -> bool:
    """True for one Contact value of the everyday shape without `expires` or `q`, which
    `parse_contact_list` is sure to accept."""
    return _NAME_ADDR_FAST.fullmatch(value) is not None and not _CONTACT_CHECKED.search(value)


_VIA, _FROM, _TO, _CALL_ID, _CSEQ, _CONTACT, _MAX_FORWARDS, _EXPIRES = (1 << n for n in range(8))
_CHECKED = {
    "via": _VIA,
    "from": _FROM,
    "to": _TO,
    "call-id": _CALL_ID,
    "cseq": _CSEQ,
    "contact": _CONTACT,
    "max-forwards": _MAX_FORWARDS,
    "expires": _EXPIRES,
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
_PARAMS = rf"(?:;{_T}(?:=[A-Za-z0-9\-.!%*_+`'~:\[\]]+)?)*"
_NAME_ADDR_FAST = re.compile(
    rf'(?:(?:"[^"\\\r\n]*"|{_T}(?:[ \t]+{_T})*)[ \t]*)?<{_SIP_URI}>{_PARAMS}|{_ADDR_SPEC}{_PARAMS}'
)
_CONTACT_CHECKED = re.compile(r";(?:expires|q)=", re.IGNORECASE)
_VIA_FAST = re.compile(rf"SIP/2\.0/[A-Za-z]+ {_HOST_PORT}{_PARAMS}")
_RPORT = re.compile(r";rport=([^;]*)", re.IGNORECASE)
_CSEQ_FAST = re.compile(rf"([0-9]{{1,9}}) ({_T})")
