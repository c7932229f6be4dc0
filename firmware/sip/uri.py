"""SIP, SIPS and tel URIs, name-addr values and header parameters (RFC 3261 §19.1, §20, §25).

A `Uri` holds *unescaped* text: `sip:%61lice@x` and `sip:alice@x` give the same `Uri`, and
`str()` escapes again exactly the characters the grammar requires. That keeps equality and the
comparison rules of §19.1.4 simple, and `parse_uri(str(u)) == u` for every parsed `u`.
"""

import dataclasses
import ipaddress
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from firmware.sip.errors import ParseError

Params = tuple[tuple[str, str | None], ...]
"""Ordered (name, value) pairs; a parameter written without `=` has the value None."""

_MARK = "-_.!~*'()"
_USER_SAFE = _MARK + "&=+$,;?/"
_PASSWORD_SAFE = _MARK + "&=+$,"
_PARAM_SAFE = _MARK + "[]/:&+$"
_HEADER_SAFE = _MARK + "[]/?:+$"

_USER_CHARS = r"A-Za-z0-9\-_.!~*'()&=+$,;?/%"
_PASSWORD_CHARS = r"A-Za-z0-9\-_.!~*'()&=+$,%"
_PARAM_CHARS = r"A-Za-z0-9\-_.!~*'()\[\]/:&+$%"
_HEADER_CHARS = r"A-Za-z0-9\-_.!~*'()\[\]/?:+$%"

_SIP_REST = re.compile(
    rf"(?:(?P<user>[{_USER_CHARS}]+)(?::(?P<password>[{_PASSWORD_CHARS}]*))?@)?"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-_.]+)"
    r"(?::(?P<port>[0-9]{1,5}))?"
    rf"(?P<params>(?:;[{_PARAM_CHARS}]+(?:=[{_PARAM_CHARS}]+)?)*)"
    rf"(?:\?(?P<headers>[{_HEADER_CHARS}=&]*))?"
)
_TEL_REST = re.compile(
    r"(?P<number>[0-9A-Fa-f*#+\-.()]+)"
    rf"(?P<params>(?:;[{_PARAM_CHARS}]+(?:=[{_PARAM_CHARS}]+)?)*)"
)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
_OPAQUE = re.compile(r"[A-Za-z0-9\-_.!~*'()%;/?:@&=+$,#\[\]]+")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_USER_PLAIN = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,;?/]*")
_PASSWORD_PLAIN = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,]*")
_PARAM_PLAIN = re.compile(r"[A-Za-z0-9\-_.!~*'()\[\]/:&+$]*")

_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
_GEN_VALUE = r'"(?:[^"\\\r\n]|\\[^\r\n])*"|[A-Za-z0-9\-.!%*_+`\'~:\[\]]+'
_PARAMS_PLAIN = re.compile(rf"(?:;{_TOKEN}(?:=[A-Za-z0-9\-.!%*_+`'~:\[\]]+)?)*")
_PARAM_LWS = re.compile(rf"[ \t]*;[ \t]*({_TOKEN})(?:[ \t]*=[ \t]*({_GEN_VALUE}))?[ \t]*")
_QUOTED = re.compile(r'"((?:[^"\\\r\n]|\\[^\r\n])*)"')
_QUOTED_PAIR = re.compile(r"\\(.)")
_TOKEN_DISPLAY = re.compile(rf"{_TOKEN}(?:[ \t]+{_TOKEN})*")
_NEEDS_QUOTED_PAIR = re.compile(r'[\x00-\x08\x0a-\x1f"\\\x7f]')

_URI_PARAMS_THAT_MUST_MATCH = ("user", "ttl", "method", "maddr", "transport")


def _unescape(text: str) -> str:
    return unquote(text, errors="surrogateescape") if "%" in text else text


def _escape(text: str, plain: re.Pattern[str], safe: str) -> str:
    if plain.fullmatch(text):
        return text
    return quote(text, safe=safe, errors="surrogateescape")


@dataclass(frozen=True, slots=True, kw_only=True)
class Uri:
    """A URI as SIP uses it. For `tel:` the number is in `user`; for any other scheme the
    scheme-specific part is kept verbatim in `opaque` and the other fields are empty."""

    scheme: str
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: Params = ()
    headers: tuple[tuple[str, str], ...] = ()
    opaque: str = ""

    @property
    def is_sip(self) -> bool:
        """True for `sip:` and `sips:`, the URIs a SIP request can be routed to."""
        return self.scheme in ("sip", "sips")

    @property
    def host_port(self) -> str:
        """`host` or `host:port`, as written in a Via sent-by or a URI."""
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def transport(self) -> str | None:
        """The `transport` parameter in lower case, or None."""
        value = self.param("transport")
        return value.lower() if value else None

    def param(self, name: str) -> str | None:
        """The value of parameter `name` (case-insensitive); None if absent or valueless."""
        return _param_value(self.params, name)

    def has_param(self, name: str) -> bool:
        return _has_param(self.params, name)

    def with_param(self, name: str, value: str | None = None) -> "Uri":
        """A copy with parameter `name` set to `value`, replacing any existing one in place."""
        return dataclasses.replace(self, params=_set_param(self.params, name, value))

    def without_param(self, name: str) -> "Uri":
        lowered = name.lower()
        return dataclasses.replace(
            self, params=tuple(p for p in self.params if p[0].lower() != lowered)
        )

    def replace(self, **changes: Any) -> "Uri":
        """A copy with the given fields changed (`dataclasses.replace`)."""
        return dataclasses.replace(self, **changes)

    def without_headers(self) -> "Uri":
        return dataclasses.replace(self, headers=())

    def __str__(self) -> str:
        if self.opaque:
            return f"{self.scheme}:{self.opaque}"
        parts = [self.scheme, ":"]
        if self.scheme == "tel":
            parts.append(self.user or "")
        else:
            if self.user is not None:
                parts.append(_escape(self.user, _USER_PLAIN, _USER_SAFE))
                if self.password is not None:
                    parts.append(":")
                    parts.append(_escape(self.password, _PASSWORD_PLAIN, _PASSWORD_SAFE))
                parts.append("@")
            parts.append(self.host_port)
        for name, value in self.params:
            parts.append(";")
            parts.append(_escape(name, _PARAM_PLAIN, _PARAM_SAFE))
            if value is not None:
                parts.append("=")
                parts.append(_escape(value, _PARAM_PLAIN, _PARAM_SAFE))
        separator = "?"
        for name, value in self.headers:
            parts.append(separator)
            parts.append(quote(name, safe=_HEADER_SAFE, errors="surrogateescape"))
            parts.append("=")
            parts.append(quote(value, safe=_HEADER_SAFE, errors="surrogateescape"))
            separator = "&"
        return "".join(parts)

    def equivalent(self, other: "Uri") -> bool:
        """URI equality by RFC 3261 §19.1.4: user and password case-sensitive, host and
        parameters case-insensitive, escaping ignored, absent port ≠ 5060, the parameters
        user/ttl/method/maddr/transport must match when either side has them, other
        parameters only when both have them, and headers always."""
        if self.scheme != other.scheme:
            return False
        if self.opaque or other.opaque:
            return self.opaque == other.opaque
        if self.scheme == "tel":
            return _tel_digits(self.user) == _tel_digits(other.user) and _lower_params(
                self.params
            ) == _lower_params(other.params)
        if (self.user, self.password, self.port) != (other.user, other.password, other.port):
            return False
        if _host_key(self.host) != _host_key(other.host):
            return False
        mine = _lower_params(self.params)
        theirs = _lower_params(other.params)
        for name in _URI_PARAMS_THAT_MUST_MATCH:
            if mine.get(name) != theirs.get(name):
                return False
        for name in mine.keys() & theirs.keys():
            if mine[name] != theirs[name]:
                return False
        return _header_set(self.headers) == _header_set(other.headers)


def _tel_digits(number: str | None) -> str:
    return "".join(c for c in (number or "") if c not in "-.()").lower()


def _lower_params(params: Params) -> dict[str, str | None]:
    lowered: dict[str, str | None] = {}
    for name, value in params:
        lowered.setdefault(name.lower(), value.lower() if value is not None else None)
    return lowered


def _header_set(headers: tuple[tuple[str, str], ...]) -> set[tuple[str, str]]:
    return {(name.lower(), value) for name, value in headers}


def _host_key(host: str) -> str:
    if host.startswith("["):
        return str(ipaddress.IPv6Address(host[1:-1]))
    return host.lower().rstrip(".")


def _param_value(params: Params, name: str) -> str | None:
    lowered = name.lower()
    for key, value in params:
        if key.lower() == lowered:
            return value
    return None


def _has_param(params: Params, name: str) -> bool:
    lowered = name.lower()
    return any(key.lower() == lowered for key, _ in params)


def _set_param(params: Params, name: str, value: str | None) -> Params:
    lowered = name.lower()
    replaced = False
    result: list[tuple[str, str | None]] = []
    for key, old in params:
        if key.lower() == lowered:
            if not replaced:
                result.append((key, value))
                replaced = True
        else:
            result.append((key, old))
    if not replaced:
        result.append((name, value))
    return tuple(result)


def parse_uri(text: str, *, any_scheme: bool = False) -> Uri:
    """Parse a `sip:`, `sips:` or `tel:` URI; raise ParseError (400) otherwise.

    With `any_scheme`, other schemes (`http:`, `urn:`…) are accepted and kept opaque, as a
    Request-URI or a To header may carry them (RFC 4475 §3.3.2–3.3.4).
    """
    scheme, colon, rest = text.partition(":")
    if not colon or not _SCHEME.fullmatch(scheme):
        raise ParseError(f"not a URI (no scheme): {text!r}")
    scheme = scheme.lower()
    if "%" in rest and _BAD_ESCAPE.search(rest):
        raise ParseError(f"bad %-escape in URI {text!r}")
    if scheme in ("sip", "sips"):
        return _parse_sip_rest(scheme, rest, text)
    if scheme == "tel":
        match = _TEL_REST.fullmatch(rest)
        if match is None:
            raise ParseError(f"malformed tel URI {text!r}")
        return Uri(scheme="tel", user=match["number"], params=_split_uri_params(match["params"]))
    if not any_scheme:
        raise ParseError(f"unsupported URI scheme {scheme!r} in {text!r}")
    if not _OPAQUE.fullmatch(rest):
        raise ParseError(f"malformed {scheme} URI {text!r}")
    return Uri(scheme=scheme, opaque=rest)


def _parse_sip_rest(scheme: str, rest: str, text: str) -> Uri:
    match = _SIP_REST.fullmatch(rest)
    if match is None:
        raise ParseError(f"malformed SIP URI {text!r}")
    user, password, host, port_text, params_text, headers_text = match.groups()
    port = None
    if port_text is not None:
        port = int(port_text)
        if port > 65535:
            raise ParseError(f"port out of range in SIP URI {text!r}")
    if host[0] == "[":
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ParseError(f"bad IPv6 reference in SIP URI {text!r}") from None
    headers: tuple[tuple[str, str], ...] = ()
    if headers_text:
        pairs = []
        for item in headers_text.split("&"):
            name, equals, value = item.partition("=")
            if not equals or not name:
                raise ParseError(f"URI header without name=value in {text!r}")
            pairs.append((_unescape(name), _unescape(value)))
        headers = tuple(pairs)
    return Uri(
        scheme=scheme,
        user=None if user is None else _unescape(user),
        password=None if password is None else _unescape(password),
        host=host,
        port=port,
        params=_split_uri_params(params_text) if params_text else (),
        headers=headers,
    )


def _split_uri_params(text: str) -> Params:
    if not text:
        return ()
    params: list[tuple[str, str | None]] = []
    for item in text[1:].split(";"):
        name, equals, value = item.partition("=")
        params.append((_unescape(name), _unescape(value) if equals else None))
    return tuple(params)


def parse_params(text: str) -> Params:
    """Parse header parameters `*( SEMI generic-param )` (RFC 3261 §25.1), with optional LWS.

    Values keep their quotes when quoted, so `str()` reproduces them; names keep their case.
    """
    if not text:
        return ()
    if _PARAMS_PLAIN.fullmatch(text):
        return _split_plain_params(text)
    params: list[tuple[str, str | None]] = []
    position = 0
    end = len(text.rstrip(" \t"))
    while position < end:
        match = _PARAM_LWS.match(text, position)
        if match is None:
            raise ParseError(f"malformed parameter at {text[position:]!r}")
        params.append((match[1], match[2]))
        position = match.end()
    return tuple(params)


def _split_plain_params(text: str) -> Params:
    params: list[tuple[str, str | None]] = []
    for item in text[1:].split(";"):
        name, equals, value = item.partition("=")
        params.append((name, value if equals else None))
    return tuple(params)


def format_params(params: Params) -> str:
    """`;name=value;flag` for header parameters (values are written as stored)."""
    return "".join(f";{name}" if value is None else f";{name}={value}" for name, value in params)


def param_value(params: Params, name: str) -> str | None:
    """The value of the first parameter called `name` (case-insensitive), None if absent."""
    return _param_value(params, name)


def set_param(params: Params, name: str, value: str | None) -> Params:
    """`params` with `name` set to `value`, in place if present, else appended."""
    return _set_param(params, name, value)


@dataclass(frozen=True, slots=True, kw_only=True)
class NameAddr:
    """A URI with an optional display name and header parameters (From, To, Contact, Route…).

    `display_name` is unquoted and unescaped; `params` are the parameters after the `>`
    (`tag`, `expires`, `q`…), not those of the URI.
    """

    uri: Uri
    display_name: str | None = None
    params: Params = ()

    def __post_init__(self) -> None:
        if self.display_name is not None and (
            "\r" in self.display_name or "\n" in self.display_name
        ):
            raise ValueError("a display name cannot contain CR or LF")

    @property
    def tag(self) -> str | None:
        return _param_value(self.params, "tag")

    @property
    def expires(self) -> int | None:
        """A Contact's `expires` parameter, None if absent or not a number."""
        value = _param_value(self.params, "expires")
        return int(value) if value is not None and value.isdigit() else None

    @property
    def q(self) -> float | None:
        """A Contact's `q` preference, None if absent or not a number."""
        value = _param_value(self.params, "q")
        try:
            return None if value is None else float(value)
        except ValueError:
            return None

    def param(self, name: str) -> str | None:
        return _param_value(self.params, name)

    def has_param(self, name: str) -> bool:
        return _has_param(self.params, name)

    def with_param(self, name: str, value: str | None = None) -> "NameAddr":
        return dataclasses.replace(self, params=_set_param(self.params, name, value))

    def with_tag(self, tag: str) -> "NameAddr":
        return self.with_param("tag", tag)

    def __str__(self) -> str:
        text = f"<{self.uri}>{format_params(self.params)}"
        if self.display_name is None:
            return text
        escaped = _NEEDS_QUOTED_PAIR.sub(lambda m: "\\" + m[0], self.display_name)
        return f'"{escaped}" {text}'


def parse_name_addr(text: str) -> NameAddr:
    """Parse `name-addr *(;param)` or `addr-spec *(;param)` (RFC 3261 §20.10, §20.20).

    In the addr-spec form (no angle brackets) everything after the first `;` is a header
    parameter, and the URI may carry neither parameters nor headers (`?`), as §20 requires.
    Any URI scheme is accepted: the UA decides later whether it can use it.
    """
    value = text.strip(" \t")
    display: str | None = None
    if value.startswith('"'):
        match = _QUOTED.match(value)
        if match is None:
            raise ParseError(f"unterminated quoted display name in {text!r}")
        display = _QUOTED_PAIR.sub(r"\1", match[1])
        rest = value[match.end() :].lstrip(" \t")
        if not rest.startswith("<"):
            raise ParseError(f"display name not followed by <URI> in {text!r}")
    else:
        bracket = value.find("<")
        if bracket > 0:
            words = value[:bracket].rstrip(" \t")
            if not _TOKEN_DISPLAY.fullmatch(words):
                raise ParseError(f"unquoted display name with non-token characters in {text!r}")
            display = " ".join(words.split())
        rest = value[bracket:] if bracket >= 0 else value
    if rest.startswith("<"):
        close = rest.find(">")
        if close < 0:
            raise ParseError(f"missing '>' in {text!r}")
        uri_text = rest[1:close]
        params_text = rest[close + 1 :]
    else:
        semicolon = rest.find(";")
        uri_text = rest if semicolon < 0 else rest[:semicolon]
        params_text = "" if semicolon < 0 else rest[semicolon:]
        uri_text = uri_text.rstrip(" \t")
        if "?" in uri_text or "," in uri_text:
            raise ParseError(f"URI with '?' or ',' must be enclosed in <> in {text!r}")
    uri = parse_uri(uri_text, any_scheme=True)
    params_text = params_text.rstrip(" \t")
    if params_text and not params_text.lstrip(" \t").startswith(";"):
        raise ParseError(f"unexpected text after URI in {text!r}")
    return NameAddr(uri=uri, display_name=display, params=parse_params(params_text))
