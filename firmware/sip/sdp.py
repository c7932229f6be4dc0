"""SDP (RFC 4566) and its offer/answer model (RFC 3264), sized for one G.711 audio stream.

Parsing keeps every line it does not interpret, so a description a peer sent can be read,
compared and written back without loss; negotiation reads only what a G.711 phone needs.
Everything here is a pure function of its arguments: session ids, versions and addresses
come from the caller.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import ClassVar, Final

SUPPORTED_CODECS: Final = ("PCMU", "PCMA")
TELEPHONE_EVENT: Final = "telephone-event"
DTMF_EVENTS: Final = "0-15"
_CLOCK_RATE: Final = 8000
_DEFAULT_PTIME: Final = 20
_AUDIO_PROTO: Final = "RTP/AVP"
_MAX_DIGITS: Final = 30  # keeps int() far from CPython's digit limit on hostile input


class SdpError(ValueError):
    """The description is not valid SDP, or not a valid offer or answer.

    `status` is the SIP response to send when the description came in a request (the
    same name as `firmware.sip.errors.ParseError.status`).
    """

    status: ClassVar[int] = 400

    def __init__(self, reason: str, *, line: int | None = None) -> None:
        super().__init__(reason if line is None else f"line {line}: {reason}")
        self.reason = reason
        self.line = line


class NoCommonCodec(SdpError):
    """No offered stream can be accepted (or an answer accepted none of ours): 488."""

    status: ClassVar[int] = 488


class Direction(StrEnum):
    """A stream's direction as the side whose description carries it sees it."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @classmethod
    def from_flags(cls, *, send: bool, receive: bool) -> Direction:
        if send:
            return cls.SENDRECV if receive else cls.SENDONLY
        return cls.RECVONLY if receive else cls.INACTIVE

    @property
    def can_send(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def can_receive(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)


_DIRECTION_NAMES: Final = frozenset(direction.value for direction in Direction)


def _check_text(what: str, text: str) -> None:
    if "\r" in text or "\n" in text or "\0" in text:
        raise SdpError(f"{what} contains a CR, LF or NUL: {text!r}")
    try:
        text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise SdpError(f"{what} cannot be encoded: {text!r}") from None


def _check_word(what: str, word: str) -> None:
    if not word or any(char.isspace() for char in word):
        raise SdpError(f"{what} must be one non-empty word: {word!r}")
    _check_text(what, word)


def _number(what: str, text: str, *, maximum: int | None = None) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > _MAX_DIGITS:
        raise SdpError(f"{what} is not a number: {text!r}")
    value = int(text)
    if maximum is not None and value > maximum:
        raise SdpError(f"{what} is out of range: {text}")
    return value


@dataclass(frozen=True, kw_only=True)
class Origin:
    """The o= line: who made the description and which version of it this is."""

    username: str
    session_id: int
    session_version: int
    address: str
    address_type: str = "IP4"
    network_type: str = "IN"

    def __post_init__(self) -> None:
        for what, word in (
            ("username", self.username),
            ("address", self.address),
            ("address type", self.address_type),
            ("network type", self.network_type),
        ):
            _check_word(what, word)
        if self.session_id < 0 or self.session_version < 0:
            raise SdpError("session id and version must not be negative")

    @classmethod
    def parse(cls, value: str) -> Origin:
        words = value.split()
        if len(words) != 6:
            raise SdpError(f"expected 6 fields, got {len(words)}: {value!r}")
        username, session_id, version, network_type, address_type, address = words
        return cls(
            username=username,
            session_id=_number("session id", session_id),
            session_version=_number("session version", version),
            network_type=network_type,
            address_type=address_type,
            address=address,
        )

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.network_type} {self.address_type} {self.address}"
        )


@dataclass(frozen=True, kw_only=True)
class Connection:
    """A c= line. `address` may carry a multicast /ttl suffix, or be a host name."""

    address: str
    address_type: str = "IP4"
    network_type: str = "IN"

    def __post_init__(self) -> None:
        _check_word("address", self.address)
        _check_word("address type", self.address_type)
        _check_word("network type", self.network_type)

    @classmethod
    def for_address(cls, address: str) -> Connection:
        """Our own connection line; IN IP6 when the address is IPv6. ValueError if not an IP."""
        parsed = ipaddress.ip_address(address)
        return cls(address=str(parsed), address_type=f"IP{parsed.version}")

    @classmethod
    def parse(cls, value: str) -> Connection:
        words = value.split()
        if len(words) != 3:
            raise SdpError(f"expected 3 fields, got {len(words)}: {value!r}")
        network_type, address_type, address = words
        return cls(network_type=network_type, address_type=address_type, address=address)

    @property
    def is_unspecified(self) -> bool:
        """0.0.0.0 (or ::): RFC 2543's hold, meaning "send me nothing" (RFC 3264 §8.4)."""
        try:
            return ipaddress.ip_address(self.address).is_unspecified
        except ValueError:
            return False

    def __str__(self) -> str:
        return f"{self.network_type} {self.address_type} {self.address}"


@dataclass(frozen=True, kw_only=True)
class RtpMap:
    """The value of a=rtpmap, or the RFC 3551 static assignment it would repeat."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int | None = None

    @classmethod
    def parse(cls, value: str) -> RtpMap:
        words = value.split()
        pieces = words[1].split("/") if len(words) == 2 else []
        if len(pieces) not in (2, 3) or not pieces[0]:
            raise SdpError(f"rtpmap: expected '<payload type> <name>/<rate>', got {value!r}")
        return cls(
            payload_type=_number("rtpmap payload type", words[0], maximum=127),
            encoding=pieces[0],
            clock_rate=_number("rtpmap clock rate", pieces[1]),
            channels=_number("rtpmap channels", pieces[2]) if len(pieces) == 3 else None,
        )

    @property
    def is_g711(self) -> bool:
        return (
            self.encoding.upper() in SUPPORTED_CODECS
            and self.clock_rate == _CLOCK_RATE
            and self.channels in (None, 1)
        )

    @property
    def is_telephone_event(self) -> bool:
        return self.encoding.lower() == TELEPHONE_EVENT and self.clock_rate == _CLOCK_RATE

    def __str__(self) -> str:
        channels = "" if self.channels is None else f"/{self.channels}"
        return f"{self.payload_type} {self.encoding}/{self.clock_rate}{channels}"


_STATIC_RTP_MAPS: Final = (
    RtpMap(payload_type=0, encoding="PCMU", clock_rate=_CLOCK_RATE),
    RtpMap(payload_type=8, encoding="PCMA", clock_rate=_CLOCK_RATE),
)


@dataclass(frozen=True)
class Attribute:
    """An a= line: a property (`a=sendonly`, value None) or a value (`a=ptime:20`)."""

    name: str
    value: str | None = None

    def __post_init__(self) -> None:
        if not self.name or ":" in self.name:
            raise SdpError(f"attribute name is empty or holds ':': {self.name!r}")
        _check_word("attribute name", self.name)
        if self.value is not None:
            _check_text(f"a={self.name} value", self.value)
        if self.name in _DIRECTION_NAMES and self.value is not None:
            raise SdpError(f"{self.name} takes no value: {self.value!r}")
        if self.name == "rtpmap":
            RtpMap.parse(self.value or "")
        if self.name == "ptime" and _number("ptime", self.value or "") == 0:
            raise SdpError("ptime must be positive")

    @classmethod
    def parse(cls, value: str) -> Attribute:
        name, colon, rest = value.partition(":")
        return cls(name, rest if colon else None)

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


# Where each uninterpreted line goes, in RFC 4566 §5 order; unknown letters go last.
_SESSION_RANKS: Final = "iuep" + "c" + "btrzk"
_MEDIA_RANKS: Final = "i" + "c" + "bk"
_MODELLED_LETTERS: Final = "vosmac"


@dataclass(frozen=True)
class OtherLine:
    """A line kept as text: i=, u=, e=, p=, b=, t=, r=, z=, k= and letters we do not know."""

    letter: str
    value: str

    def __post_init__(self) -> None:
        if len(self.letter) != 1 or not self.letter.isascii() or not self.letter.isalpha():
            raise SdpError(f"a line type is one ASCII letter, not {self.letter!r}")
        if self.letter in _MODELLED_LETTERS:
            raise SdpError(f"{self.letter}= lines have their own field")
        _check_text(f"{self.letter}= value", self.value)

    def __str__(self) -> str:
        return f"{self.letter}={self.value}"


_UNBOUNDED_TIME: Final = (OtherLine("t", "0 0"),)  # "t=0 0", what SIP uses (RFC 3264 §5)


def _in_rfc_order(lines: Iterable[OtherLine], ranks: str) -> tuple[OtherLine, ...]:
    """A stable sort, so t= keeps its r= lines and every description has one serialisation."""
    return tuple(sorted(lines, key=lambda line: _rank(line, ranks)))


def _rank(line: OtherLine, ranks: str) -> int:
    position = ranks.find(line.letter)
    return len(ranks) if position < 0 else position


def _lines_around_connection(
    lines: tuple[OtherLine, ...], connection: Connection | None, ranks: str
) -> list[str]:
    before = ranks.index("c")
    return [
        *(str(line) for line in lines if _rank(line, ranks) < before),
        *([f"c={connection}"] if connection is not None else []),
        *(str(line) for line in lines if _rank(line, ranks) > before),
    ]


def _direction_in(attributes: Iterable[Attribute]) -> Direction | None:
    found = {Direction(a.name) for a in attributes if a.name in _DIRECTION_NAMES}
    if len(found) > 1:
        raise SdpError(f"conflicting direction attributes: {', '.join(sorted(found))}")
    return found.pop() if found else None


@dataclass(frozen=True, kw_only=True)
class MediaDescription:
    """An m= section: the m= line and the c=, a= and other lines that follow it."""

    media: str
    port: int
    formats: tuple[str, ...]
    proto: str = _AUDIO_PROTO
    port_count: int | None = None
    connection: Connection | None = None
    attributes: tuple[Attribute, ...] = ()
    other_lines: tuple[OtherLine, ...] = ()

    def __post_init__(self) -> None:
        _check_word("media", self.media)
        _check_word("proto", self.proto)
        if not 0 <= self.port <= 65535:
            raise SdpError(f"port is out of range: {self.port}")
        if self.port_count is not None and self.port_count < 1:
            raise SdpError(f"port count must be positive: {self.port_count}")
        for fmt in self.formats:
            _check_word("format", fmt)
            if self.is_rtp:
                _number("payload type", fmt, maximum=127)
        _direction_in(self.attributes)
        object.__setattr__(self, "other_lines", _in_rfc_order(self.other_lines, _MEDIA_RANKS))

    @property
    def is_rtp(self) -> bool:
        return "RTP/" in self.proto.upper()

    @property
    def payload_types(self) -> tuple[int, ...]:
        return tuple(int(fmt) for fmt in self.formats) if self.is_rtp else ()

    @property
    def direction(self) -> Direction | None:
        """This section's own direction attribute; see SessionDescription.direction_of."""
        return _direction_in(self.attributes)

    @property
    def ptime(self) -> int | None:
        values = self.values("ptime")
        return int(values[0]) if values else None

    def values(self, name: str) -> tuple[str, ...]:
        return tuple(a.value for a in self.attributes if a.name == name and a.value is not None)

    def rtp_map(self, payload_type: int) -> RtpMap | None:
        """The a=rtpmap for a payload type, else its static assignment, else None."""
        for value in self.values("rtpmap"):
            rtp_map = RtpMap.parse(value)
            if rtp_map.payload_type == payload_type:
                return rtp_map
        return next((m for m in _STATIC_RTP_MAPS if m.payload_type == payload_type), None)

    @property
    def is_active_rtp_audio(self) -> bool:
        """Whether this phone could carry the stream at all (RTP/AVP audio, not disabled)."""
        return self.media == "audio" and self.proto.upper() == _AUDIO_PROTO and self.port != 0


def _media_lines(media: MediaDescription) -> list[str]:
    count = "" if media.port_count is None else f"/{media.port_count}"
    m_line = " ".join((media.media, f"{media.port}{count}", media.proto, *media.formats))
    return [
        f"m={m_line}",
        *_lines_around_connection(media.other_lines, media.connection, _MEDIA_RANKS),
        *(f"a={attribute}" for attribute in media.attributes),
    ]


@dataclass(frozen=True, kw_only=True)
class SessionDescription:
    """A whole description; `bytes()` of it is CRLF SDP that parses back equal."""

    origin: Origin
    name: str = "-"
    connection: Connection | None = None
    attributes: tuple[Attribute, ...] = ()
    media: tuple[MediaDescription, ...] = ()
    other_lines: tuple[OtherLine, ...] = _UNBOUNDED_TIME

    def __post_init__(self) -> None:
        _check_text("session name", self.name)
        _direction_in(self.attributes)
        object.__setattr__(self, "other_lines", _in_rfc_order(self.other_lines, _SESSION_RANKS))

    def connection_for(self, media: MediaDescription) -> Connection | None:
        return media.connection or self.connection

    def direction_of(self, media: MediaDescription) -> Direction:
        return media.direction or _direction_in(self.attributes) or Direction.SENDRECV

    def serialize(self) -> bytes:
        lines = [
            "v=0",
            f"o={self.origin}",
            f"s={self.name}",
            *_lines_around_connection(self.other_lines, self.connection, _SESSION_RANKS),
            *(f"a={attribute}" for attribute in self.attributes),
        ]
        for media in self.media:
            lines.extend(_media_lines(media))
        return "".join(f"{line}\r\n" for line in lines).encode("utf-8", "surrogateescape")

    def __bytes__(self) -> bytes:
        return self.serialize()


@dataclass
class _Section:
    """The c=, a= and other lines of the session or of one m= section, while being read."""

    connection: Connection | None = None
    attributes: list[Attribute] = field(default_factory=list)
    other_lines: list[OtherLine] = field(default_factory=list)

    def add(self, letter: str, value: str) -> None:
        if letter == "a":
            self.attributes.append(Attribute.parse(value))
            _direction_in(self.attributes)
        elif letter == "c":
            if self.connection is not None:
                raise SdpError("only one c= line is allowed here")
            self.connection = Connection.parse(value)
        else:
            self.other_lines.append(OtherLine(letter, value))


def _media_line(value: str) -> MediaDescription:
    words = value.split()
    if len(words) < 3:
        raise SdpError(f"expected '<media> <port> <proto> <format>...', got {value!r}")
    port, slash, count = words[1].partition("/")
    return MediaDescription(
        media=words[0],
        port=_number("port", port, maximum=65535),
        port_count=_number("port count", count) if slash else None,
        proto=words[2],
        formats=tuple(words[3:]),
    )


_HEADER: Final = "vos"


class _Reader:
    """Reads lines in order: the v=, o=, s= header, the session's lines, then m= sections."""

    def __init__(self) -> None:
        self.header_seen = 0
        self.origin: Origin | None = None
        self.name = ""
        self.session = _Section()
        self.media: list[tuple[MediaDescription, _Section]] = []

    def add(self, letter: str, value: str, line: int) -> None:
        if self.header_seen < len(_HEADER) or letter in _HEADER:
            expected = _HEADER[self.header_seen] if self.header_seen < len(_HEADER) else None
            if letter != expected:
                where = (
                    f"expected {expected}= here" if expected else "allowed only once, at the top"
                )
                raise SdpError(f"{letter}=: {where}", line=line)
            self.header_seen += 1
        try:
            self._add(letter, value)
        except SdpError as error:
            raise SdpError(f"{letter}=: {error.reason}", line=line) from None

    def _add(self, letter: str, value: str) -> None:
        if letter == "v":
            if value != "0":
                raise SdpError(f"unsupported SDP version {value!r}")
        elif letter == "o":
            self.origin = Origin.parse(value)
        elif letter == "s":
            _check_text("session name", value)
            self.name = value
        elif letter == "m":
            self.media.append((_media_line(value), _Section()))
        else:
            (self.media[-1][1] if self.media else self.session).add(letter, value)

    def finish(self, last_line: int) -> SessionDescription:
        if self.header_seen < len(_HEADER):
            missing = _HEADER[self.header_seen]
            raise SdpError(f"the description ends before its {missing}= line", line=last_line)
        assert self.origin is not None  # the header, now complete, held the o= line
        return SessionDescription(
            origin=self.origin,
            name=self.name,
            connection=self.session.connection,
            attributes=tuple(self.session.attributes),
            other_lines=tuple(self.session.other_lines),
            media=tuple(
                replace(
                    media,
                    connection=lines.connection,
                    attributes=tuple(lines.attributes),
                    other_lines=tuple(lines.other_lines),
                )
                for media, lines in self.media
            ),
        )


def parse_sdp(body: bytes) -> SessionDescription:
    """Parse a description; SdpError, naming the line, is the only error it raises.

    LF-only line ends, blank lines and unknown lines and attributes are accepted; bytes
    that are not UTF-8 are kept (as surrogate escapes) and written back unchanged.
    """
    reader = _Reader()
    last_line = 0
    for number, raw in enumerate(body.decode("utf-8", "surrogateescape").split("\n"), start=1):
        text = raw.removesuffix("\r")
        if not text.strip():
            continue
        if len(text) < 2 or text[1] != "=":
            raise SdpError(f"expected '<type>=<value>', got {text[:40]!r}", line=number)
        if not (text[0].isascii() and text[0].isalpha()):
            raise SdpError(f"a line type is one ASCII letter, not {text[0]!r}", line=number)
        reader.add(text[0], text[2:], number)
        last_line = number
    if last_line == 0:
        raise SdpError("empty description")
    return reader.finish(last_line)


@dataclass(frozen=True, kw_only=True)
class MediaSession:
    """What an offer/answer exchange settled for the media engine, from our side.

    Payload types are the peer's numbers, the ones to send with (RFC 3264 §6.1 keeps them
    equal to ours). `local_hold`/`remote_hold` say which side's description put the
    stream on hold: a=sendonly or a=inactive where receiving was possible, or c=0.0.0.0.
    """

    remote_address: str
    remote_port: int
    codec: str
    payload_type: int
    telephone_event_pt: int | None
    ptime: int
    direction: Direction
    local_hold: bool
    remote_hold: bool

    @property
    def can_send(self) -> bool:
        return self.direction.can_send

    @property
    def can_receive(self) -> bool:
        return self.direction.can_receive

    @property
    def on_hold(self) -> bool:
        return self.local_hold or self.remote_hold


@dataclass(frozen=True, kw_only=True)
class Answer:
    """Our answer to a peer's offer, and the media session it settles."""

    description: SessionDescription
    media: MediaSession


def _checked_codecs(codecs: Sequence[str]) -> tuple[str, ...]:
    names = tuple(name.upper() for name in codecs)
    if not names or len(set(names)) != len(names) or not set(names) <= set(SUPPORTED_CODECS):
        raise ValueError(f"codecs must be distinct names from {SUPPORTED_CODECS}: {codecs!r}")
    return names


def _audio_media(
    rtp_port: int, rtp_maps: Sequence[RtpMap], ptime: int, direction: Direction
) -> MediaDescription:
    if not 0 < rtp_port <= 65535:
        raise ValueError(f"RTP port out of range: {rtp_port}")
    return MediaDescription(
        media="audio",
        port=rtp_port,
        formats=tuple(str(rtp_map.payload_type) for rtp_map in rtp_maps),
        attributes=(
            *(Attribute("rtpmap", str(rtp_map)) for rtp_map in rtp_maps),
            *(
                Attribute("fmtp", f"{rtp_map.payload_type} {DTMF_EVENTS}")
                for rtp_map in rtp_maps
                if rtp_map.is_telephone_event
            ),
            Attribute("ptime", str(ptime)),
            Attribute(direction.value),
        ),
    )


def _own_description(
    connection: Connection,
    media: Iterable[MediaDescription],
    *,
    username: str,
    session_id: int,
    session_version: int,
    times: Iterable[OtherLine] = _UNBOUNDED_TIME,
) -> SessionDescription:
    origin = Origin(
        username=username,
        session_id=session_id,
        session_version=session_version,
        address=connection.address,
        address_type=connection.address_type,
    )
    return SessionDescription(
        origin=origin, connection=connection, media=tuple(media), other_lines=tuple(times)
    )


def build_offer(
    *,
    address: str,
    rtp_port: int,
    session_id: int,
    session_version: int,
    codecs: Sequence[str] = SUPPORTED_CODECS,
    telephone_event_pt: int | None = 101,
    ptime: int = _DEFAULT_PTIME,
    direction: Direction = Direction.SENDRECV,
    username: str = "-",
) -> SessionDescription:
    """Our offer: one audio stream with the codecs in preference order, then telephone-event.

    ValueError for an address that is not an IP, an unknown codec or a bad number.
    """
    if telephone_event_pt is not None and not 96 <= telephone_event_pt <= 127:
        raise ValueError(f"telephone-event needs a dynamic payload type: {telephone_event_pt}")
    rtp_maps = [
        m for name in _checked_codecs(codecs) for m in _STATIC_RTP_MAPS if m.encoding == name
    ]
    if telephone_event_pt is not None:
        events = RtpMap(
            payload_type=telephone_event_pt, encoding=TELEPHONE_EVENT, clock_rate=_CLOCK_RATE
        )
        rtp_maps.append(events)
    media = _audio_media(rtp_port, rtp_maps, ptime, direction)
    connection = Connection.for_address(address)
    return _own_description(
        connection,
        [media],
        username=username,
        session_id=session_id,
        session_version=session_version,
    )


def next_version(
    previous: SessionDescription, *, direction: Direction | None = None
) -> SessionDescription:
    """Our description one version on, for a re-offer (RFC 3264 §8).

    With `direction`, every stream not disabled gets it: sendonly (or inactive) to hold,
    sendrecv to resume.
    """
    origin = replace(previous.origin, session_version=previous.origin.session_version + 1)
    media = previous.media
    if direction is not None:
        media = tuple(_with_direction(m, direction) if m.port else m for m in media)
    return replace(previous, origin=origin, media=media)


def _with_direction(media: MediaDescription, direction: Direction) -> MediaDescription:
    kept = tuple(a for a in media.attributes if a.name not in _DIRECTION_NAMES)
    return replace(media, attributes=(*kept, Attribute(direction.value)))


def _first(media: MediaDescription, wanted: Callable[[RtpMap], bool]) -> RtpMap | None:
    for payload_type in media.payload_types:
        rtp_map = media.rtp_map(payload_type)
        if rtp_map is not None and wanted(rtp_map):
            return rtp_map
    return None


def _answer_stream(
    offer: SessionDescription,
    offered: MediaDescription,
    *,
    connection: Connection,
    supported: tuple[str, ...],
    rtp_port: int,
    ptime: int,
    wish: Direction,
) -> MediaDescription:
    """Our m= section accepting one offered stream; NoCommonCodec says why it cannot."""
    if not offered.is_active_rtp_audio:
        raise NoCommonCodec("disabled" if offered.port == 0 else f"not {_AUDIO_PROTO} audio")
    their_connection = offer.connection_for(offered)
    if their_connection is None:
        raise NoCommonCodec("no c= line")
    if their_connection.address_type.upper() != connection.address_type:
        raise NoCommonCodec(f"{their_connection.address_type} only, we have {connection}")
    codec = _first(offered, lambda m: m.is_g711 and m.encoding.upper() in supported)
    if codec is None:
        raise NoCommonCodec(f"no common codec among {' '.join(offered.formats)}")
    rtp_maps = [replace(codec, encoding=codec.encoding.upper(), channels=None)]
    events = _first(offered, lambda m: m.is_telephone_event)
    if events is not None:
        rtp_maps.append(replace(events, encoding=TELEPHONE_EVENT, channels=None))
    theirs = offer.direction_of(offered)
    if their_connection.is_unspecified:
        theirs = Direction.from_flags(send=theirs.can_send, receive=False)
    direction = Direction.from_flags(
        send=wish.can_send and theirs.can_receive, receive=wish.can_receive and theirs.can_send
    )
    return _audio_media(rtp_port, rtp_maps, ptime, direction)


def _rejected(offered: MediaDescription) -> MediaDescription:
    return MediaDescription(
        media=offered.media, port=0, proto=offered.proto, formats=offered.formats
    )


def answer_offer(
    offer: SessionDescription,
    *,
    address: str,
    rtp_port: int,
    session_id: int,
    session_version: int,
    codecs: Sequence[str] = SUPPORTED_CODECS,
    ptime: int = _DEFAULT_PTIME,
    direction: Direction = Direction.SENDRECV,
    username: str = "-",
) -> Answer:
    """Answer a peer's offer (RFC 3264 §6): one m= line per offered one, in order.

    The first usable audio stream is accepted with the offer's first codec among `codecs`
    and the offer's telephone-event payload type; `direction` is our wish, narrowed by
    what the offer allows. Every other stream gets port 0. NoCommonCodec (488) if nothing
    could be accepted, its message saying why for each stream.
    """
    connection = Connection.for_address(address)
    supported = _checked_codecs(codecs)
    answered: list[MediaDescription] = []
    refusals: list[str] = []
    for index, offered in enumerate(offer.media, start=1):
        if any(media.port for media in answered):
            answered.append(_rejected(offered))
            continue
        try:
            answered.append(
                _answer_stream(
                    offer,
                    offered,
                    connection=connection,
                    supported=supported,
                    rtp_port=rtp_port,
                    ptime=ptime,
                    wish=direction,
                )
            )
        except NoCommonCodec as refusal:
            refusals.append(f"m= line {index} ({offered.media}): {refusal.reason}")
            answered.append(_rejected(offered))
    if not any(media.port for media in answered):
        raise NoCommonCodec("; ".join(refusals) or "the offer has no m= line")
    times = [line for line in offer.other_lines if line.letter == "t"]  # RFC 3264 §6: equal
    description = _own_description(
        connection,
        answered,
        username=username,
        session_id=session_id,
        session_version=session_version,
        times=times or _UNBOUNDED_TIME,
    )
    return Answer(
        description=description,
        media=_negotiate(local=description, remote=offer, we_offered=False),
    )


def process_answer(offer: SessionDescription, answer: SessionDescription) -> MediaSession:
    """The media session the peer's answer settles for our offer.

    NoCommonCodec if the answer rejected (port 0) or gave no codec we offered for every
    audio stream; SdpError if it is no answer to this offer (m= lines differ in number).
    """
    return _negotiate(local=offer, remote=answer, we_offered=True)


def _shared_codec(offered: MediaDescription, answered: MediaDescription) -> RtpMap | None:
    """The answer's first G.711 codec that the offer also had (RFC 3264 §6.1: its pick)."""
    offered_names = {
        rtp_map.encoding.upper()
        for payload_type in offered.payload_types
        if (rtp_map := offered.rtp_map(payload_type)) is not None and rtp_map.is_g711
    }
    return _first(answered, lambda m: m.is_g711 and m.encoding.upper() in offered_names)


def _holds(direction: Direction, unspecified: bool, offered: Direction | None) -> bool:
    """Whether one side's description holds the stream.

    An offerer (`offered` None) holds by refusing to receive; an answerer, by refusing to
    receive what the offer would have sent. c=0.0.0.0 holds either way.
    """
    if unspecified:
        return True
    if offered is None:
        return not direction.can_receive
    return offered.can_send and not direction.can_receive


def _negotiate(
    *, local: SessionDescription, remote: SessionDescription, we_offered: bool
) -> MediaSession:
    offer, answer = (local, remote) if we_offered else (remote, local)
    if len(answer.media) != len(offer.media):
        raise SdpError(f"the answer has {len(answer.media)} m= lines, the offer {len(offer.media)}")
    for index, (ours, theirs) in enumerate(zip(local.media, remote.media, strict=True)):
        if not (ours.is_active_rtp_audio and theirs.is_active_rtp_audio):
            continue
        codec = _shared_codec(offered=offer.media[index], answered=answer.media[index])
        if codec is None:
            continue
        remote_connection = remote.connection_for(theirs)
        if remote_connection is None:
            raise SdpError(f"m= line {index + 1} has no c= line")
        local_connection = local.connection_for(ours)
        local_direction = local.direction_of(ours)
        remote_direction = remote.direction_of(theirs)
        offered_direction = local_direction if we_offered else remote_direction
        our_events = _first(ours, lambda m: m.is_telephone_event)
        their_events = _first(theirs, lambda m: m.is_telephone_event)
        return MediaSession(
            remote_address=remote_connection.address,
            remote_port=theirs.port,
            codec=codec.encoding.upper(),
            payload_type=codec.payload_type,
            telephone_event_pt=their_events.payload_type if their_events and our_events else None,
            ptime=theirs.ptime or ours.ptime or _DEFAULT_PTIME,
            direction=Direction.from_flags(
                send=local_direction.can_send
                and remote_direction.can_receive
                and not remote_connection.is_unspecified,
                receive=local_direction.can_receive and remote_direction.can_send,
            ),
            local_hold=_holds(
                local_direction,
                local_connection is not None and local_connection.is_unspecified,
                None if we_offered else offered_direction,
            ),
            remote_hold=_holds(
                remote_direction,
                remote_connection.is_unspecified,
                offered_direction if we_offered else None,
            ),
        )
    raise NoCommonCodec("the answer accepted none of our audio streams")
