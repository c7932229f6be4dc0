"""Bytes to `Request`/`Response`: the one entry point for everything a peer sends.

The header block is split once and kept as (canonical name, unfolded value) strings; only what a
UA must check to reject a malformed message is parsed here (start line, Via, From, To, Call-ID,
CSeq, Max-Forwards, Expires, Contact, Content-Length), and those typed values stay cached in the
`Headers` for the layers above. Everything else is parsed when it is asked for.
"""

import re
from dataclasses import dataclass

from firmware.sip.errors import ParseError
from firmware.sip.headers import CANONICAL_BY_LOWER, CSeq, Headers
from firmware.sip.message import Request, Response
from firmware.sip.uri import Uri, parse_uri

MAX_MESSAGE_SIZE = 65535
"""The largest message `parse_message` accepts by default: the UDP limit (RFC 3261 §18.1.1)."""

_FOLD = re.compile(r"\r\n[ \t]+")
_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_SIP_VERSION = re.compile(r"SIP/[0-9]+\.[0-9]+", re.IGNORECASE)
_KEYS = {lowered: (name.lower(), name) for lowered, name in CANONICAL_BY_LOWER.items()}
_SINGLETONS = frozenset(
    ("call-id", "cseq", "from", "to", "max-forwards", "content-length", "content-type")
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
    headers = Headers.from_parsed(entries)
    if isinstance(start, tuple):
        method, uri = start
        cseq = _check_core(headers, 400)
        if cseq.method != method:
            raise ParseError(f"CSeq method {cseq.method} does not match request method {method}")
        return Request(method, uri, headers, body)
    _check_core(headers, None)
    return Response(start.status, start.reason, headers, body)


def _header_entries(
    lines: list[str], error_status: int | None
) -> tuple[list[tuple[str, str, str]], int | None]:
    entries: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    content_length: int | None = None
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            raise ParseError(f"header line without ':': {line[:60]!r}", error_status)
        name = name.rstrip(" \t")
        known = _KEYS.get(name.lower())
        if known is None:
            if not _TOKEN.fullmatch(name):
                raise ParseError(f"invalid header name {name[:60]!r}", error_status)
            key = name.lower()
        else:
            key, name = known
            if key in _SINGLETONS:
                if key in seen:
                    raise ParseError(f"more than one {name} header", error_status)
                seen.add(key)
                if key == "content-length":
                    content_length = _content_length(value.strip(" \t"), error_status)
                    continue
        entries.append((key, name, value.strip(" \t")))
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


def _check_core(headers: Headers, error_status: int | None) -> CSeq:
    """Parse (and so cache) every header whose malformation the UA must answer with 400."""
    try:
        if not headers.vias():
            raise ParseError("missing Via header")
        if headers.from_() is None:
            raise ParseError("missing From header")
        if headers.to() is None:
            raise ParseError("missing To header")
        if headers.call_id() is None:
            raise ParseError("missing Call-ID header")
        cseq = headers.cseq()
        if cseq is None:
            raise ParseError("missing CSeq header")
        headers.max_forwards()
        headers.expires()
        headers.contacts()
    except ParseError as error:
        if error_status is None:
            raise error.for_response() from None
        raise
    return cseq
