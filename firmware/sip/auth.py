"""Digest access authentication for SIP (RFC 2617, RFC 7616, RFC 8760), both halves.

The client half answers 401/407 challenges when we register and call; the server half lets our
presence agent and door station challenge peers. They share one header parser and one set of
formulas, so the tests can pair them in memory. Everything random (the cnonce) is an argument:
the stack passes `secrets.token_hex(16)`, tests pass fixed strings.

Text is hashed as UTF-8, which is what SIP carries everywhere (RFC 3261 §7.3.1); RFC 7616's
`charset` parameter is therefore recorded but changes nothing.
"""

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import NamedTuple


class AuthError(ValueError):
    """A challenge or credentials header we cannot use; the message says what is wrong."""


def _excerpt(text: str) -> str:
    """Peer text quoted in an error message, cut short: a hostile header must not make the
    message (and the log line it ends up in) as long as itself."""
    return repr(text if len(text) <= 40 else text[:40] + "...")


class Algorithm(StrEnum):
    """The digest algorithms of the IANA registry that RFC 8760 admits into SIP."""

    MD5 = "MD5"
    MD5_SESS = "MD5-sess"
    SHA_256 = "SHA-256"
    SHA_256_SESS = "SHA-256-sess"
    SHA_512_256 = "SHA-512-256"
    SHA_512_256_SESS = "SHA-512-256-sess"

    @classmethod
    def from_token(cls, token: str) -> "Algorithm":
        """Servers write `md5` as often as `MD5`, so names match case-insensitively."""
        for algorithm in cls:
            if algorithm.value.lower() == token.lower():
                return algorithm
        raise AuthError(f"unsupported digest algorithm {_excerpt(token)}")

    @property
    def is_session(self) -> bool:
        """A -sess variant hashes the nonce and cnonce into HA1 (RFC 7616 §3.4.2)."""
        return self.value.endswith("-sess")

    @property
    def strength(self) -> int:
        """MD5 is broken; both SHA-2 variants give 256 bits, so between them the server's
        order decides, as RFC 8760 §2.4 asks."""
        return 0 if self.value.startswith("MD5") else 1

    @property
    def hex_length(self) -> int:
        return 32 if self.value.startswith("MD5") else 64

    def hexdigest(self, data: bytes) -> str:
        match self.value.removesuffix("-sess"):
            case "MD5":
                return hashlib.md5(data).hexdigest()
            case "SHA-256":
                return hashlib.sha256(data).hexdigest()
            case _:
                return hashlib.new("sha512_256", data).hexdigest()


class Qop(StrEnum):
    """Quality of protection: `auth-int` also hashes the message body."""

    AUTH = "auth"
    AUTH_INT = "auth-int"


@dataclass(frozen=True, kw_only=True)
class DigestChallenge:
    """One Digest challenge. An empty `qop` is the legacy RFC 2069 form: no cnonce, no nc."""

    realm: str
    nonce: str
    algorithm: Algorithm = Algorithm.MD5
    qop: tuple[Qop, ...] = ()
    opaque: str | None = None
    stale: bool = False
    domain: tuple[str, ...] = ()
    userhash: bool = False
    charset: str | None = None

    def __post_init__(self) -> None:
        if self.algorithm.is_session and not self.qop:
            raise AuthError(f"algorithm {self.algorithm} needs a qop: its HA1 uses the cnonce")


@dataclass(frozen=True, kw_only=True)
class DigestCredentials:
    """A parsed Authorization or Proxy-Authorization value; `nc` is kept as sent because the
    response hashes its exact spelling."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: Algorithm = Algorithm.MD5
    qop: Qop | None = None
    nc: str | None = None
    cnonce: str | None = None
    opaque: str | None = None
    userhash: bool = False

    def __post_init__(self) -> None:
        if self.qop is not None and (self.nc is None or self.cnonce is None):
            raise AuthError(f"credentials with qop={self.qop} need both nc and cnonce")
        if self.nc is not None and not _NONCE_COUNT.fullmatch(self.nc):
            raise AuthError(f"nc must be 8 hex digits, got {_excerpt(self.nc)}")
        if self.algorithm.is_session and self.qop is None:
            raise AuthError(f"algorithm {self.algorithm} needs a qop: its HA1 uses the cnonce")
        if not re.fullmatch(rf"[0-9a-f]{{{self.algorithm.hex_length}}}", self.response):
            raise AuthError(
                f"response must be {self.algorithm.hex_length} lower-case hex digits "
                f"for {self.algorithm}, got {len(self.response)} characters"
            )

    @property
    def nonce_count(self) -> int | None:
        """The server tracks this per nonce to refuse replays (RFC 7616 §3.4)."""
        return None if self.nc is None else int(self.nc, 16)


class AuthHeaderNames(NamedTuple):
    challenge: str
    credentials: str


def auth_header_names(status: int) -> AuthHeaderNames:
    """A registrar or UAS challenges with 401, a proxy with 407 (RFC 3261 §22.2, §22.3)."""
    match status:
        case 401:
            return AuthHeaderNames("WWW-Authenticate", "Authorization")
        case 407:
            return AuthHeaderNames("Proxy-Authenticate", "Proxy-Authorization")
        case _:
            raise ValueError(f"status {status} carries no authentication challenge")


# --- header values: RFC 7235 §2.1 challenge/credentials lists, with RFC 3261 quoting ---

_TOKEN_CHARS = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_LWS = r"[ \t\r\n]*"
_PARAM_AFTER_COMMA = rf",[ \t\r\n,]*{_TOKEN_CHARS}{_LWS}="
_TOKEN = re.compile(_TOKEN_CHARS)
# A token68 blob stands alone before a comma; `realm=, nonce="n"` is a bad parameter instead.
_TOKEN68 = re.compile(rf"[0-9A-Za-z._~+/-]+=*(?={_LWS}(?:,|\Z))(?!{_LWS}{_PARAM_AFTER_COMMA})")
_QUOTED = re.compile(r'"((?:[^"\\\r\n]|\\[^\r\n])*)"')
_QUOTED_PAIR = re.compile(r"\\(.)")
_WHITESPACE = re.compile(_LWS)
_SEPARATORS = re.compile(r"[ \t\r\n,]*")
_EQUALS = re.compile(r"=")
_NEXT_PARAM = re.compile(_PARAM_AFTER_COMMA)
_NONCE_COUNT = re.compile(r"[0-9A-Fa-f]{8}")
_UNQUOTABLE = re.compile(r"[\x00\r\n]")


class _AuthItem(NamedTuple):
    """One challenge or credentials: a scheme with either parameters or a token68 blob."""

    scheme: str
    params: Mapping[str, str]
    token68: str | None


class _Scanner:
    """A cursor over one header value that names the offset of whatever it cannot read."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos : self.pos + 1]

    def take(self, pattern: re.Pattern[str]) -> re.Match[str] | None:
        match = pattern.match(self.text, self.pos)
        if match is not None:
            self.pos = match.end()
        return match

    def skip(self, pattern: re.Pattern[str]) -> bool:
        start = self.pos
        self.take(pattern)
        return self.pos > start

    def error(self, expected: str) -> AuthError:
        found = repr(self.peek()) if not self.at_end() else "the end of the value"
        return AuthError(f"expected {expected} at offset {self.pos}, found {found}")


def _split_items(value: str) -> list[_AuthItem]:
    """Read `1#challenge` (or credentials); empty list elements are allowed as RFC 7230 §7 asks."""
    scanner = _Scanner(value)
    items: list[_AuthItem] = []
    scanner.skip(_SEPARATORS)
    while not scanner.at_end():
        scheme = scanner.take(_TOKEN)
        if scheme is None:
            raise scanner.error("an authentication scheme")
        params: dict[str, str] = {}
        token68 = None
        if scanner.skip(_WHITESPACE) and not scanner.at_end() and scanner.peek() != ",":
            blob = scanner.take(_TOKEN68)
            if blob is not None:
                token68 = blob.group()
            else:
                _read_params(scanner, params)
        items.append(_AuthItem(scheme.group(), params, token68))
        scanner.skip(_WHITESPACE)
        if not scanner.at_end() and scanner.peek() != ",":
            raise scanner.error("',' after a challenge")
        scanner.skip(_SEPARATORS)
    return items


def _read_params(scanner: _Scanner, params: dict[str, str]) -> None:
    """Read `name=value` pairs up to the end or to the comma that starts the next challenge."""
    while True:
        name = scanner.take(_TOKEN)
        if name is None:
            raise scanner.error("a parameter name")
        key = name.group().lower()
        scanner.skip(_WHITESPACE)
        if not scanner.skip(_EQUALS):
            raise scanner.error(f"'=' after parameter {_excerpt(key)}")
        scanner.skip(_WHITESPACE)
        if scanner.peek() == '"':
            quoted = scanner.take(_QUOTED)
            if quoted is None:
                raise AuthError(
                    f"unterminated quoted value of {_excerpt(key)} at offset {scanner.pos}"
                )
            text = _QUOTED_PAIR.sub(r"\1", quoted.group(1))
        else:
            token = scanner.take(_TOKEN)
            if token is None:
                raise scanner.error(f"a token or quoted string for {_excerpt(key)}")
            text = token.group()
        if key in params:
            raise AuthError(f"parameter {_excerpt(key)} appears twice")
        params[key] = text
        scanner.skip(_WHITESPACE)
        if scanner.at_end():
            return
        if scanner.peek() != ",":
            raise scanner.error("',' between parameters")
        if _NEXT_PARAM.match(scanner.text, scanner.pos) is None:
            return  # this comma ends the challenge: a new scheme or nothing follows
        scanner.skip(_SEPARATORS)


def _single_digest_item(value: str, what: str) -> Mapping[str, str]:
    items = _split_items(value)
    if not items:
        raise AuthError(f"empty {what}")
    if len(items) > 1:
        raise AuthError(f"{what} holds {len(items)} entries; expected one")
    return _digest_params(items[0])


def _digest_params(item: _AuthItem) -> Mapping[str, str]:
    if item.scheme.lower() != "digest":
        raise AuthError(f"scheme {_excerpt(item.scheme)} is not Digest")
    if item.token68 is not None:
        raise AuthError(f"Digest needs name=value parameters, got {_excerpt(item.token68)}")
    return item.params


def _required(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if value is None:
        raise AuthError(f"Digest parameter {name!r} is missing")
    return value


def _is_true(params: Mapping[str, str], name: str) -> bool:
    """RFC 2617 §3.2.1: anything but `true` is false."""
    return params.get(name, "").lower() == "true"


def _qop_options(text: str) -> tuple[Qop, ...]:
    """Keep the options we know; unknown ones (RFC 2617 allows extensions) are skipped."""
    offered = [option.strip().lower() for option in text.split(",")]
    known = tuple(qop for qop in Qop if qop.value in offered)
    if not known:
        raise AuthError(f"qop {_excerpt(text)} offers neither auth nor auth-int")
    return known


def _challenge_from(params: Mapping[str, str]) -> DigestChallenge:
    algorithm = params.get("algorithm")
    qop = params.get("qop")
    return DigestChallenge(
        realm=_required(params, "realm"),
        nonce=_required(params, "nonce"),
        algorithm=Algorithm.MD5 if algorithm is None else Algorithm.from_token(algorithm),
        qop=() if qop is None else _qop_options(qop),
        opaque=params.get("opaque"),
        stale=_is_true(params, "stale"),
        domain=tuple(params.get("domain", "").split()),
        userhash=_is_true(params, "userhash"),
        charset=params.get("charset"),
    )


def parse_challenge(header_value: str) -> DigestChallenge:
    """Parse one WWW-Authenticate or Proxy-Authenticate value holding one Digest challenge."""
    return _challenge_from(_single_digest_item(header_value, "challenge"))


def choose_challenge(header_values: Sequence[str]) -> DigestChallenge:
    """The strongest usable Digest challenge among all offered (RFC 8760 §2.4).

    Stronger hashes win, then challenges with a qop over legacy ones, then the server's order.
    Malformed or unsupported entries are skipped; if none is left, the error lists why.
    """
    usable: list[DigestChallenge] = []
    problems: list[str] = []
    for value in header_values:
        try:
            items = _split_items(value)
        except AuthError as error:
            problems.append(str(error))
            continue
        for item in items:
            try:
                usable.append(_challenge_from(_digest_params(item)))
            except AuthError as error:
                problems.append(str(error))
    if not usable:
        reasons = "; ".join(problems) if problems else "no challenge was offered"
        raise AuthError(f"no usable Digest challenge: {reasons}")
    return max(usable, key=lambda challenge: (challenge.algorithm.strength, bool(challenge.qop)))


def parse_credentials(header_value: str) -> DigestCredentials:
    """Parse one Authorization or Proxy-Authorization value (the server side)."""
    params = _single_digest_item(header_value, "credentials")
    algorithm = params.get("algorithm")
    qop = params.get("qop")
    if qop is not None and qop.lower() not in tuple(Qop):
        raise AuthError(f"unsupported qop {_excerpt(qop)}")
    return DigestCredentials(
        username=_required(params, "username"),
        realm=_required(params, "realm"),
        nonce=_required(params, "nonce"),
        uri=_required(params, "uri"),
        response=_required(params, "response").lower(),
        algorithm=Algorithm.MD5 if algorithm is None else Algorithm.from_token(algorithm),
        qop=None if qop is None else Qop(qop.lower()),
        nc=params.get("nc"),
        cnonce=params.get("cnonce"),
        opaque=params.get("opaque"),
        userhash=_is_true(params, "userhash"),
    )


def _quote(text: str) -> str:
    if _UNQUOTABLE.search(text):
        raise AuthError("a digest value cannot contain CR, LF or NUL")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_challenge(challenge: DigestChallenge) -> str:
    """The WWW-Authenticate/Proxy-Authenticate value a server sends for `challenge`."""
    parts = [f"realm={_quote(challenge.realm)}", f"nonce={_quote(challenge.nonce)}"]
    if challenge.opaque is not None:
        parts.append(f"opaque={_quote(challenge.opaque)}")
    parts.append(f"algorithm={challenge.algorithm}")
    if challenge.qop:
        parts.append(f"qop={_quote(','.join(challenge.qop))}")
    if challenge.stale:
        parts.append("stale=true")
    if challenge.domain:
        parts.append(f"domain={_quote(' '.join(challenge.domain))}")
    if challenge.charset is not None:
        parts.append(f"charset={_quote(challenge.charset)}")
    if challenge.userhash:
        parts.append("userhash=true")
    return "Digest " + ", ".join(parts)


# --- the formulas: RFC 7616 §3.4.1-§3.4.3, and RFC 2069 when the challenge has no qop ---


def _utf8(text: str) -> bytes:
    """Digest hashes UTF-8. A message parser that decoded with surrogateescape hands us bytes
    that were not UTF-8 as surrogates; those hash as the bytes the peer sent."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise AuthError("a digest value holds a lone surrogate, which has no UTF-8 form") from None


def _digest(algorithm: Algorithm, *fields: str) -> str:
    return algorithm.hexdigest(_utf8(":".join(fields)))


def username_hash(username: str, realm: str, algorithm: Algorithm) -> str:
    """What the client sends in place of its name when the challenge asks for `userhash`
    (RFC 7616 §3.4.4); a server finds the account by computing this for each candidate."""
    return _digest(algorithm, username, realm)


def _password_ha1(algorithm: Algorithm, username: str, realm: str, password: str) -> str:
    return _digest(algorithm, username, realm, password)


def _response(
    algorithm: Algorithm,
    ha1: str,
    *,
    nonce: str,
    method: str,
    uri: str,
    qop: Qop | None,
    nc: str,
    cnonce: str,
    body: bytes,
) -> str:
    if algorithm.is_session:
        ha1 = _digest(algorithm, ha1, nonce, cnonce)
    a2 = [method, uri, algorithm.hexdigest(body)] if qop is Qop.AUTH_INT else [method, uri]
    ha2 = _digest(algorithm, *a2)
    if qop is None:
        return _digest(algorithm, ha1, nonce, ha2)
    return _digest(algorithm, ha1, nonce, nc, cnonce, qop, ha2)


def _choose_qop(offered: tuple[Qop, ...], integrity: bool) -> Qop | None:
    if not offered:
        return None
    if integrity and Qop.AUTH_INT in offered:
        return Qop.AUTH_INT
    return Qop.AUTH if Qop.AUTH in offered else Qop.AUTH_INT


def authorize(
    challenge: DigestChallenge,
    *,
    username: str,
    password: str,
    method: str,
    uri: str,
    cnonce: str,
    nonce_count: int,
    body: bytes = b"",
    integrity: bool = False,
) -> str:
    """The Authorization/Proxy-Authorization value answering `challenge`.

    `uri` is the Request-URI as sent; `integrity` asks for qop=auth-int (the body is hashed)
    when the challenge offers it, otherwise plain `auth` is used. A challenge without qop gets
    the legacy RFC 2069 answer, which has no cnonce or nc.
    """
    qop = _choose_qop(challenge.qop, integrity)
    if not 1 <= nonce_count <= 0xFFFFFFFF:
        raise ValueError(f"nonce_count {nonce_count} is outside 1..0xffffffff")
    nc = f"{nonce_count:08x}"
    response = _response(
        challenge.algorithm,
        _password_ha1(challenge.algorithm, username, challenge.realm, password),
        nonce=challenge.nonce,
        method=method,
        uri=uri,
        qop=qop,
        nc=nc,
        cnonce=cnonce,
        body=body,
    )
    sent_name = (
        username_hash(username, challenge.realm, challenge.algorithm)
        if challenge.userhash
        else username
    )
    parts = [
        f"username={_quote(sent_name)}",
        f"realm={_quote(challenge.realm)}",
        f"nonce={_quote(challenge.nonce)}",
        f"uri={_quote(uri)}",
        f'response="{response}"',
        f"algorithm={challenge.algorithm}",
    ]
    if challenge.opaque is not None:
        parts.append(f"opaque={_quote(challenge.opaque)}")
    if qop is not None:
        parts += [f"qop={qop}", f"nc={nc}", f"cnonce={_quote(cnonce)}"]
    if challenge.userhash:
        parts.append("userhash=true")
    return "Digest " + ", ".join(parts)


def verify(
    credentials: DigestCredentials,
    challenge: DigestChallenge,
    *,
    method: str,
    body: bytes = b"",
    password: str | None = None,
    ha1: str | None = None,
    username: str | None = None,
) -> bool:
    """Whether `credentials` answer `challenge`, the one this server issued, for this request.

    Give the account's `password`, or its stored `ha1` = H(username:realm:password) in the
    challenge's algorithm. `username` is the account's real name; it is required when the
    challenge offered userhash and the client used it. Checking that `credentials.uri` names
    the request and that `credentials.nonce_count` grows per nonce (replay) is the caller's.
    """
    algorithm = challenge.algorithm
    account = credentials.username if username is None else username
    if password is not None and ha1 is None:
        base_ha1 = _password_ha1(algorithm, account, challenge.realm, password)
    elif ha1 is not None and password is None:
        if not re.fullmatch(rf"[0-9a-f]{{{algorithm.hex_length}}}", ha1):
            raise ValueError(f"ha1 must be {algorithm.hex_length} lower-case hex digits")
        base_ha1 = ha1
    else:
        raise ValueError("give exactly one of password or ha1")
    if not _answers(credentials, challenge):
        return False
    if credentials.userhash and username is None:
        raise ValueError("credentials use userhash: pass the account's username")
    sent_name = (
        username_hash(account, challenge.realm, algorithm) if credentials.userhash else account
    )
    expected = _response(
        algorithm,
        base_ha1,
        nonce=challenge.nonce,
        method=method,
        uri=credentials.uri,
        qop=credentials.qop,
        nc=credentials.nc or "",
        cnonce=credentials.cnonce or "",
        body=body,
    )
    name_matches = hmac.compare_digest(_utf8(credentials.username), _utf8(sent_name))
    response_matches = hmac.compare_digest(expected.encode(), credentials.response.encode())
    return name_matches and response_matches


def _answers(credentials: DigestCredentials, challenge: DigestChallenge) -> bool:
    """Whether the credentials echo what the server offered: a client that answers MD5 to a
    SHA-256 challenge, or drops the qop to get the weaker RFC 2069 form, is refused."""
    qop_allowed = credentials.qop in challenge.qop if challenge.qop else credentials.qop is None
    return (
        qop_allowed
        and credentials.algorithm is challenge.algorithm
        and credentials.realm == challenge.realm
        and credentials.nonce == challenge.nonce
        and credentials.opaque == challenge.opaque
        and (challenge.userhash or not credentials.userhash)
    )


# --- the client's memory: one challenge and nonce count per realm ---


class ChallengeVerdict(StrEnum):
    """What a fresh challenge says about the credentials we already sent for its realm."""

    NEW = "new"
    """First challenge for this realm (or we had not answered the last): answer it."""
    STALE = "stale"
    """The nonce expired but the password was fine (stale=true): answer the new nonce."""
    REJECTED = "rejected"
    """We answered this realm and were challenged again without stale: the password is wrong;
    retrying with it would loop."""


@dataclass(frozen=True)
class _RealmState:
    challenge: DigestChallenge
    header_name: str
    nonce_count: int


@dataclass(eq=False)
class DigestClient:
    """One account's digest state: the last challenge per realm and how often its nonce was
    used, so later requests reuse the nonce with nc 00000001, 00000002, ... (RFC 7616 §3.4)."""

    username: str
    password: str = field(repr=False)
    _realms: dict[str, _RealmState] = field(default_factory=dict, init=False, repr=False)

    def receive(self, status: int, header_values: Sequence[str]) -> ChallengeVerdict:
        """Take a 401's WWW-Authenticate or a 407's Proxy-Authenticate values."""
        header_name = auth_header_names(status).credentials
        challenge = choose_challenge(header_values)
        prior = self._realms.get(challenge.realm)
        if prior is None or prior.nonce_count == 0:
            verdict = ChallengeVerdict.NEW
        elif challenge.stale:
            verdict = ChallengeVerdict.STALE
        else:
            verdict = ChallengeVerdict.REJECTED
        same_nonce = prior is not None and prior.challenge.nonce == challenge.nonce
        count = prior.nonce_count if prior is not None and same_nonce else 0
        self._realms[challenge.realm] = _RealmState(challenge, header_name, count)
        return verdict

    def authorization_headers(
        self,
        *,
        method: str,
        uri: str,
        cnonce: str,
        body: bytes = b"",
        integrity: bool = False,
    ) -> tuple[tuple[str, str], ...]:
        """(header name, value) for every realm that challenged us, each using its next nc."""
        headers = []
        for realm, state in list(self._realms.items()):
            count = state.nonce_count + 1
            self._realms[realm] = replace(state, nonce_count=count)
            value = authorize(
                state.challenge,
                username=self.username,
                password=self.password,
                method=method,
                uri=uri,
                cnonce=cnonce,
                nonce_count=count,
                body=body,
                integrity=integrity,
            )
            headers.append((state.header_name, value))
        return tuple(headers)
