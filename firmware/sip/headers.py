"""The header section: an ordered, case-insensitive multimap plus typed views of the headers a UA
reads (RFC 3261 §7.3, §20).

Values are kept as the unfolded strings that arrived, so a header the stack does not understand
goes back out untouched. Typed values (`Via`, `CSeq`, `NameAddr`…) are parsed on first access and
remembered until the headers change. `parse_message` has already checked that the core ones
(Via, From, To, Call-ID, CSeq, Contact, Max-Forwards, Expires) parse, so on a received message
their accessors cannot fail.
"""

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar, cast

from firmware.sip.errors import ParseError
from firmware.sip.uri import (
    NameAddr,
    Params,
    format_params,
    param_value,
    parse_name_addr,
    set_param,
)
from firmware.sip.uri import parse_params as parse_header_params

_CANONICAL_NAMES = [
    "Accept",
    "Accept-Contact",
    "Accept-Encoding",
    "Accept-Language",
    "Alert-Info",
    "Allow",
    "Allow-Events",
    "Authentication-Info",
    "Authorization",
    "Call-ID",
    "Call-Info",
    "Contact",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-Type",
    "CSeq",
    "Date",
    "Error-Info",
    "Event",
    "Expires",
    "From",
    "Identity",
    "In-Reply-To",
    "Max-Forwards",
    "MIME-Version",
    "Min-Expires",
    "Min-SE",
    "Organization",
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "Path",
    "Priority",
    "Privacy",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Require",
    "RAck",
    "Reason",
    "Record-Route",
    "Refer-To",
    "Referred-By",
    "Reject-Contact",
    "Replaces",
    "Reply-To",
    "Request-Disposition",
    "Require",
    "Retry-After",
    "Route",
    "RSeq",
    "Server",
    "Service-Route",
    "Session-Expires",
    "SIP-ETag",
    "SIP-If-Match",
    "Subject",
    "Subscription-State",
    "Supported",
    "Timestamp",
    "To",
    "Unsupported",
    "User-Agent",
    "Via",
    "Warning",
    "WWW-Authenticate",
]

COMPACT_FORMS = {
    "i": "Call-ID",
    "m": "Contact",
    "v": "Via",
    "f": "From",
    "t": "To",
    "l": "Content-Length",
    "c": "Content-Type",
    "k": "Supported",
    "s": "Subject",
    "e": "Content-Encoding",
    "o": "Event",
    "u": "Allow-Events",
    "r": "Refer-To",
    "b": "Referred-By",
    "x": "Session-Expires",
    "y": "Identity",
    "a": "Accept-Contact",
    "j": "Reject-Contact",
    "d": "Request-Disposition",
}
"""RFC 3261 §7.3.3 and later extensions: compact name -> canonical name."""

CANONICAL_BY_LOWER: dict[str, str] = {
    **{name.lower(): name for name in _CANONICAL_NAMES},
    **COMPACT_FORMS,
}
"""Lower-case known or compact name -> canonical spelling."""

LIST_HEADERS = frozenset(
    name.lower()
    for name in [
        "Accept",
        "Accept-Contact",
        "Accept-Encoding",
        "Accept-Language",
        "Alert-Info",
        "Allow",
        "Allow-Events",
        "Call-Info",
        "Contact",
        "Content-Encoding",
        "Content-Language",
        "Error-Info",
        "In-Reply-To",
        "P-Asserted-Identity",
        "P-Preferred-Identity",
        "Path",
        "Privacy",
        "Proxy-Require",
        "Reason",
        "Record-Route",
        "Reject-Contact",
        "Require",
        "Route",
        "Service-Route",
        "Supported",
        "Unsupported",
        "Via",
        "Warning",
    ]
)
"""Headers whose value is a comma-separated list (§7.3.1); others (Date, WWW-Authenticate,
Authorization…) hold commas as data and are never split."""

MAX_DELTA_SECONDS = 2**32 - 1

_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_CALL_ID_WORD = r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+"
_CALL_ID_RE = re.compile(rf"{_CALL_ID_WORD}(?:@{_CALL_ID_WORD})?")
_DIGITS_RE = re.compile(r"[0-9]+")
_CSEQ_RE = re.compile(r"([0-9]+)[ \t]+([A-Za-z0-9\-.!%*_+`'~]+)")
_VIA_RE = re.compile(
    r"([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*/[ \t]*([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*/[ \t]*"
    r"([A-Za-z0-9\-.!%*_+`'~]+)[ \t]+"
    r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-_.]+)(?:[ \t]*:[ \t]*([0-9]{1,5}))?[ \t]*"
)
_QVALUE_RE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")
_MEDIA_TYPE_RE = re.compile(
    r"([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*/[ \t]*([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*"
)
_AUTH_PARAM_RE = re.compile(
    r"[ \t]*([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*=[ \t]*"
    r'("(?:[^"\\\r\n]|\\[^\r\n])*"|[A-Za-z0-9\-.!%*_+`\'~/:=@]+)[ \t]*(?:,|$)'
)
_QUOTED_PAIR = re.compile(r"\\(.)")

_T = TypeVar("_T")


def canonical_name(name: str) -> str:
    """The canonical spelling of a known or compact header name; others are returned as is."""
    return CANONICAL_BY_LOWER.get(name.lower(), name)


def split_list(value: str) -> list[str]:
    """Split a list header's value at the commas that are not inside quotes or <>."""
    if "," not in value:
        stripped = value.strip(" \t")
        return [stripped] if stripped else []
    if '"' not in value and "<" not in value:
        return [item for item in (part.strip(" \t") for part in value.split(",")) if item]
    items: list[str] = []
    start = 0
    in_quotes = in_angle = escaped = False
    for index, char in enumerate(value):
        if escaped:
            escaped = False
        elif in_quotes:
            if char == "\\":
                escaped = True
            elif char == '"':
                in_quotes = False
        elif char == '"':
            in_quotes = True
        elif char == "<":
            in_angle = True
        elif char == ">":
            in_angle = False
        elif char == "," and not in_angle:
            items.append(value[start:index])
            start = index + 1
    items.append(value[start:])
    return [item for item in (part.strip(" \t") for part in items) if item]


def unquote_string(value: str) -> str:
    """The content of a quoted-string with its quoted-pairs resolved; other text as is."""
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return _QUOTED_PAIR.sub(r"\1", value[1:-1])
    return value


def quote_string(value: str) -> str:
    """`value` as a quoted-string, escaping `"` and `\\`."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def parse_bounded_int(text: str, limit: int, what: str) -> int:
    """A decimal number of at most `limit` (Max-Forwards, Expires, CSeq…); `what` names it
    in the error."""
    if not _DIGITS_RE.fullmatch(text):
        raise ParseError(f"{what} is not a number: {text!r}")
    stripped = text.lstrip("0")
    if len(stripped) > len(str(limit)) or int(stripped or "0") > limit:
        raise ParseError(f"{what} out of range: {text[:40]!r}")
    return int(stripped or "0")


def parse_call_id(value: str) -> str:
    """`word [@ word]` (§25.1), returned as is."""
    if not _CALL_ID_RE.fullmatch(value):
        raise ParseError(f"malformed Call-ID: {value!r}")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Via:
    """One Via value: `SIP/2.0/<transport> <host>[:<port>];params` (§20.42)."""

    transport: str
    host: str
    port: int | None = None
    params: Params = ()

    @property
    def branch(self) -> str | None:
        return param_value(self.params, "branch")

    @property
    def received(self) -> str | None:
        return param_value(self.params, "received")

    @property
    def has_rport(self) -> bool:
        """True when `rport` is present, with or without a value (RFC 3581)."""
        return any(name.lower() == "rport" for name, _ in self.params)

    @property
    def rport(self) -> int | None:
        """The port filled in by the server that received the request, if any."""
        value = param_value(self.params, "rport")
        return int(value) if value else None

    @property
    def maddr(self) -> str | None:
        return param_value(self.params, "maddr")

    @property
    def sent_by(self) -> str:
        """`host` or `host:port` as the sender wrote it."""
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def with_param(self, name: str, value: str | None = None) -> "Via":
        return Via(
            transport=self.transport,
            host=self.host,
            port=self.port,
            params=set_param(self.params, name, value),
        )

    def __str__(self) -> str:
        return f"SIP/2.0/{self.transport} {self.sent_by}{format_params(self.params)}"


def parse_via(value: str) -> Via:
    """Parse one Via value (not a comma-separated list)."""
    match = _VIA_RE.match(value)
    if match is None:
        raise ParseError(f"malformed Via: {value!r}")
    name, version, transport, host, port_text = match.groups()
    if name.upper() != "SIP" or version != "2.0":
        raise ParseError(f"Via protocol is not SIP/2.0: {value!r}")
    port = None
    if port_text is not None:
        port = int(port_text)
        if port > 65535:
            raise ParseError(f"Via port out of range: {value!r}")
    params = parse_header_params(value[match.end() :])
    rport = param_value(params, "rport")
    if rport is not None and not (_DIGITS_RE.fullmatch(rport) and int(rport) <= 65535):
        raise ParseError(f"Via rport is not a port: {value!r}")
    return Via(transport=transport.upper(), host=host, port=port, params=params)


@dataclass(frozen=True, slots=True)
class CSeq:
    """`CSeq: <seq> <method>` (§20.16); seq is at most 2**32-1."""

    seq: int
    method: str

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


def parse_cseq(value: str) -> CSeq:
    match = _CSEQ_RE.fullmatch(value)
    if match is None:
        raise ParseError(f"malformed CSeq: {value!r}")
    return CSeq(parse_bounded_int(match[1], MAX_DELTA_SECONDS, "CSeq number"), match[2])


@dataclass(frozen=True, slots=True)
class ContentType:
    """`type/subtype;params` with `type` and `subtype` in lower case (§20.15)."""

    type: str
    subtype: str
    params: Params = ()

    @property
    def mime(self) -> str:
        """`type/subtype`, for comparing against `application/sdp` and the like."""
        return f"{self.type}/{self.subtype}"

    def param(self, name: str) -> str | None:
        value = param_value(self.params, name)
        return None if value is None else unquote_string(value)

    def __str__(self) -> str:
        return f"{self.mime}{format_params(self.params)}"


def parse_content_type(value: str) -> ContentType:
    match = _MEDIA_TYPE_RE.match(value)
    if match is None:
        raise ParseError(f"malformed Content-Type: {value!r}")
    params = parse_header_params(value[match.end() :])
    return ContentType(match[1].lower(), match[2].lower(), params)


@dataclass(frozen=True, slots=True)
class Challenge:
    """A WWW-/Proxy-Authenticate challenge, or Authorization/Proxy-Authorization credentials
    (§20.27, §20.44, §22): a scheme and its `name=value` parameters, values as written
    (quoted ones keep their quotes, so `str()` reproduces them exactly)."""

    scheme: str
    params: tuple[tuple[str, str], ...] = ()

    def param(self, name: str) -> str | None:
        """The parameter's value with quotes removed; None if absent."""
        lowered = name.lower()
        for key, value in self.params:
            if key.lower() == lowered:
                return unquote_string(value)
        return None

    @property
    def realm(self) -> str | None:
        return self.param("realm")

    @property
    def nonce(self) -> str | None:
        return self.param("nonce")

    @property
    def opaque(self) -> str | None:
        return self.param("opaque")

    @property
    def algorithm(self) -> str | None:
        return self.param("algorithm")

    @property
    def qop_options(self) -> tuple[str, ...]:
        """The qop values offered (a challenge's `qop="auth,auth-int"`), lower-cased."""
        value = self.param("qop")
        if value is None:
            return ()
        return tuple(item.strip().lower() for item in value.split(",") if item.strip())

    @property
    def stale(self) -> bool:
        return (self.param("stale") or "").lower() == "true"

    def __str__(self) -> str:
        return f"{self.scheme} " + ", ".join(f"{name}={value}" for name, value in self.params)


Credentials = Challenge
"""Authorization and Proxy-Authorization share the challenge's syntax."""


def parse_challenge(value: str) -> Challenge:
    scheme, _, rest = value.strip(" \t").partition(" ")
    if not _TOKEN_RE.fullmatch(scheme):
        raise ParseError(f"malformed authentication scheme in {value!r}")
    params: list[tuple[str, str]] = []
    position = 0
    rest = rest.strip(" \t")
    while position < len(rest):
        match = _AUTH_PARAM_RE.match(rest, position)
        if match is None:
            raise ParseError(f"malformed authentication parameter in {value!r}")
        params.append((match[1], match[2]))
        position = match.end()
    return Challenge(scheme, tuple(params))


def parse_contact_list(value: str) -> list[NameAddr]:
    """Parse a Contact value: a list of name-addrs whose `expires` and `q` must be valid."""
    contacts = []
    for item in split_list(value):
        contact = parse_name_addr(item)
        expires = contact.param("expires")
        if expires is not None:
            parse_bounded_int(expires, MAX_DELTA_SECONDS, "Contact expires")
        q = contact.param("q")
        if q is not None and not _QVALUE_RE.fullmatch(q):
            raise ParseError(f"Contact q is not a qvalue: {q!r}")
        contacts.append(contact)
    return contacts


class Headers:
    """An ordered multimap of header name to value, case-insensitive and aware of compact forms.

    Known names are stored in canonical spelling (`v` and `VIA` both become `Via`); unknown ones
    as written. Iterating yields `(name, value)` in order, one pair per header line.
    """

    __slots__ = ("_cache", "_entries")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._entries: list[tuple[str, str, str]] = []
        self._cache: dict[str, object] = {}
        for name, value in items:
            self.add(name, value)

    @classmethod
    def from_parsed(cls, entries: list[tuple[str, str, str]]) -> "Headers":
        """Adopt `(key, name, value)` entries a parser has already checked and canonicalised:
        key is the lower-case canonical name, name the spelling to write, value unfolded."""
        headers = cls.__new__(cls)
        headers._entries = entries
        headers._cache = {}
        return headers

    @staticmethod
    def _entry(name: str, value: str) -> tuple[str, str, str]:
        lowered = name.lower()
        canonical = CANONICAL_BY_LOWER.get(lowered)
        if canonical is None:
            if not _TOKEN_RE.fullmatch(name):
                raise ValueError(f"header name is not a token: {name!r}")
            canonical = name
        if "\r" in value or "\n" in value:
            raise ValueError(f"header value contains a line break: {value!r}")
        return canonical.lower(), canonical, value.strip(" \t")

    def add(self, name: str, value: str) -> None:
        """Append a header line."""
        self._entries.append(self._entry(name, value))
        self._cache.clear()

    def add_first(self, name: str, value: str) -> None:
        """Insert a header line before the first one of the same name (at the end if none):
        how a Via or a Record-Route is pushed."""
        entry = self._entry(name, value)
        for index, (key, _, _) in enumerate(self._entries):
            if key == entry[0]:
                self._entries.insert(index, entry)
                break
        else:
            self._entries.append(entry)
        self._cache.clear()

    def set(self, name: str, value: str) -> None:
        """Replace every line of `name` by one line, where the first one was (else at the end)."""
        entry = self._entry(name, value)
        kept: list[tuple[str, str, str]] = []
        placed = False
        for existing in self._entries:
            if existing[0] == entry[0]:
                if not placed:
                    kept.append(entry)
                    placed = True
            else:
                kept.append(existing)
        if not placed:
            kept.append(entry)
        self._entries = kept
        self._cache.clear()

    def remove(self, name: str) -> int:
        """Remove every line of `name`; return how many there were."""
        key = canonical_name(name).lower()
        before = len(self._entries)
        self._entries = [entry for entry in self._entries if entry[0] != key]
        self._cache.clear()
        return before - len(self._entries)

    def remove_first(self, name: str) -> str | None:
        """Remove the first value of `name` (the top Via, the first Route) and return it.

        For a list header whose first line holds several values, only the first value goes.
        """
        key = canonical_name(name).lower()
        for index, (entry_key, entry_name, value) in enumerate(self._entries):
            if entry_key != key:
                continue
            values = split_list(value) if key in LIST_HEADERS else [value]
            if len(values) > 1:
                self._entries[index] = (entry_key, entry_name, ", ".join(values[1:]))
            else:
                del self._entries[index]
            self._cache.clear()
            return values[0] if values else None
        return None

    def lines(self, name: str) -> list[str]:
        """The raw values of every line of `name`, not split at commas."""
        key = canonical_name(name).lower()
        return [value for entry_key, _, value in self._entries if entry_key == key]

    def get_all(self, name: str) -> list[str]:
        """Every value of `name` in order; list headers are split at their commas."""
        key = canonical_name(name).lower()
        values = [value for entry_key, _, value in self._entries if entry_key == key]
        if key not in LIST_HEADERS:
            return values
        if len(values) == 1:
            return split_list(values[0])
        return [item for value in values for item in split_list(value)]

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of `name`, or `default`."""
        values = self.get_all(name)
        return values[0] if values else default

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = canonical_name(name).lower()
        return any(entry[0] == key for entry in self._entries)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return ((name, value) for _, name, value in self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(key, value) for key, _, value in self._entries] == [
            (key, value) for key, _, value in other._entries
        ]

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({list(self)!r})"

    def copy(self) -> "Headers":
        return Headers.from_parsed(list(self._entries))

    def _typed(self, key: str, build: Callable[[], _T]) -> _T:
        if key in self._cache:
            return cast(_T, self._cache[key])
        value = build()
        self._cache[key] = value
        return value

    def _single(self, name: str) -> str | None:
        key = name.lower()
        found = None
        for entry_key, _, value in self._entries:
            if entry_key == key:
                if found is not None:
                    raise ParseError(f"more than one {name} header")
                found = value
        return found

    def vias(self) -> tuple[Via, ...]:
        """Every Via value, topmost first."""
        return self._typed("via", lambda: tuple(parse_via(v) for v in self.get_all("Via")))

    def _name_addr(self, name: str) -> NameAddr | None:
        def build() -> NameAddr | None:
            value = self._single(name)
            return None if value is None else parse_name_addr(value)

        return self._typed(name.lower(), build)

    def from_(self) -> NameAddr | None:
        return self._name_addr("From")

    def to(self) -> NameAddr | None:
        return self._name_addr("To")

    def call_id(self) -> str | None:
        def build() -> str | None:
            value = self._single("Call-ID")
            return None if value is None else parse_call_id(value)

        return self._typed("call-id", build)

    def cseq(self) -> CSeq | None:
        def build() -> CSeq | None:
            value = self._single("CSeq")
            return None if value is None else parse_cseq(value)

        return self._typed("cseq", build)

    def _bounded(self, name: str, limit: int) -> int | None:
        def build() -> int | None:
            value = self._single(name)
            return None if value is None else parse_bounded_int(value, limit, name)

        return self._typed(name.lower(), build)

    def max_forwards(self) -> int | None:
        return self._bounded("Max-Forwards", 255)

    def expires(self) -> int | None:
        return self._bounded("Expires", MAX_DELTA_SECONDS)

    def min_expires(self) -> int | None:
        return self._bounded("Min-Expires", MAX_DELTA_SECONDS)

    def content_type(self) -> ContentType | None:
        def build() -> ContentType | None:
            value = self._single("Content-Type")
            return None if value is None else parse_content_type(value)

        return self._typed("content-type", build)

    def contacts(self) -> tuple[NameAddr, ...]:
        """Every Contact value in order; empty for none and for the wildcard `*`."""

        def build() -> tuple[NameAddr, ...]:
            values = self.lines("Contact")
            if any(value == "*" for value in values):
                if len(values) > 1:
                    raise ParseError("Contact: * must be the only Contact")
                return ()
            return tuple(c for value in values for c in parse_contact_list(value))

        return self._typed("contact", build)

    def is_wildcard_contact(self) -> bool:
        """True for `Contact: *` (a REGISTER that removes every binding)."""
        return self.lines("Contact") == ["*"]

    def routes(self) -> tuple[NameAddr, ...]:
        return self._typed(
            "route", lambda: tuple(parse_name_addr(v) for v in self.get_all("Route"))
        )

    def record_routes(self) -> tuple[NameAddr, ...]:
        return self._typed(
            "record-route",
            lambda: tuple(parse_name_addr(v) for v in self.get_all("Record-Route")),
        )

    def _challenges(self, name: str) -> tuple[Challenge, ...]:
        return self._typed(
            name.lower(), lambda: tuple(parse_challenge(v) for v in self.lines(name))
        )

    def www_authenticate(self) -> tuple[Challenge, ...]:
        return self._challenges("WWW-Authenticate")

    def proxy_authenticate(self) -> tuple[Challenge, ...]:
        return self._challenges("Proxy-Authenticate")

    def authorization(self) -> tuple[Credentials, ...]:
        return self._challenges("Authorization")

    def proxy_authorization(self) -> tuple[Credentials, ...]:
        return self._challenges("Proxy-Authorization")
