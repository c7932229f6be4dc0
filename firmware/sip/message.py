"""SIP requests and responses as plain values (RFC 3261 §7).

A message is its start line, its `Headers` and its body bytes, nothing else: `bytes(msg)` is
written from these fields and always carries the Content-Length of the body, so a stale or
hand-set Content-Length header can never go out. Messages with equal fields are equal.
"""

from abc import ABC, abstractmethod
from collections.abc import Iterable

from firmware.sip.errors import ParseError
from firmware.sip.headers import ContentType, CSeq, Headers, Via
from firmware.sip.uri import NameAddr, Uri, parse_uri

SIP_VERSION = "SIP/2.0"

REASON_PHRASES = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    199: "Early Dialog Terminated",
    200: "OK",
    202: "Accepted",
    204: "No Notification",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    412: "Conditional Request Failed",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    417: "Unknown Resource-Priority",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    428: "Use Identity Header",
    429: "Provide Referrer Identity",
    433: "Anonymity Disallowed",
    436: "Bad Identity-Info",
    437: "Unsupported Certificate",
    438: "Invalid Identity Header",
    439: "First Hop Lacks Outbound Support",
    440: "Max-Breadth Exceeded",
    469: "Bad Info Package",
    470: "Consent Needed",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    493: "Undecipherable",
    494: "Security Agreement Required",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    555: "Push Notification Service Not Supported",
    580: "Precondition Failure",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
    607: "Unwanted",
    608: "Rejected",
}
"""The reason phrases of RFC 3261 §21 and later RFCs, used when a response is built without one."""


def reason_phrase(status: int) -> str:
    """The registered phrase for `status`, or a generic one for its class."""
    return REASON_PHRASES.get(status) or REASON_PHRASES[status // 100 * 100 or 100]


def _headers(headers: Headers | Iterable[tuple[str, str]] | None) -> Headers:
    if isinstance(headers, Headers):
        return headers
    return Headers(headers or ())


class Message(ABC):
    """What requests and responses share: headers, body and typed views of the core headers.

    The views raise ParseError when their header is missing or malformed; a message that
    `parse_message` returned has valid Via, From, To, Call-ID and CSeq.
    """

    __slots__ = ("body", "headers")

    def __init__(self, headers: Headers, body: bytes) -> None:
        self.headers = headers
        self.body = body

    def _missing(self, name: str) -> ParseError:
        return ParseError(f"missing {name} header", self._error_status())

    def _error_status(self) -> int | None:
        return 400

    @property
    def vias(self) -> tuple[Via, ...]:
        return self.headers.vias()

    @property
    def top_via(self) -> Via:
        vias = self.headers.vias()
        if not vias:
            raise self._missing("Via")
        return vias[0]

    @property
    def from_(self) -> NameAddr:
        value = self.headers.from_()
        if value is None:
            raise self._missing("From")
        return value

    @property
    def to(self) -> NameAddr:
        value = self.headers.to()
        if value is None:
            raise self._missing("To")
        return value

    @property
    def call_id(self) -> str:
        value = self.headers.call_id()
        if value is None:
            raise self._missing("Call-ID")
        return value

    @property
    def cseq(self) -> CSeq:
        value = self.headers.cseq()
        if value is None:
            raise self._missing("CSeq")
        return value

    @property
    def contacts(self) -> tuple[NameAddr, ...]:
        return self.headers.contacts()

    @property
    def max_forwards(self) -> int | None:
        return self.headers.max_forwards()

    @property
    def expires(self) -> int | None:
        return self.headers.expires()

    @property
    def content_type(self) -> ContentType | None:
        return self.headers.content_type()

    @property
    def content_length(self) -> int:
        """The length of the body: what `bytes()` writes as Content-Length."""
        return len(self.body)

    @abstractmethod
    def _start_line(self) -> str:
        """The request or status line, without CRLF."""

    def __bytes__(self) -> bytes:
        lines = [self._start_line(), "\r\n"]
        for name, value in self.headers:
            if name != "Content-Length":
                lines.append(f"{name}: {value}\r\n")
        lines.append(f"Content-Length: {len(self.body)}\r\n\r\n")
        return "".join(lines).encode("utf-8", "surrogateescape") + self.body

    def _header_key(self) -> list[tuple[str, str]]:
        return [(name.lower(), value) for name, value in self.headers if name != "Content-Length"]


class Request(Message):
    """A SIP request. `uri` is the Request-URI; the version is always SIP/2.0."""

    __slots__ = ("_uri", "_uri_text", "method")

    def __init__(
        self,
        method: str,
        uri: Uri,
        headers: Headers | Iterable[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> None:
        super().__init__(_headers(headers), body)
        self.method = method
        self._uri: Uri | None = uri
        self._uri_text = ""

    @classmethod
    def parsed(cls, method: str, uri_text: str, headers: Headers, body: bytes) -> "Request":
        """For the parser: a request whose Request-URI text is known to parse, and is parsed
        only when `uri` is first read."""
        request = cls.__new__(cls)
        request.headers = headers
        request.body = body
        request.method = method
        request._uri = None
        request._uri_text = uri_text
        return request

    @property
    def uri(self) -> Uri:
        """The Request-URI."""
        if self._uri is None:
            self._uri = parse_uri(self._uri_text, any_scheme=True)
        return self._uri

    @uri.setter
    def uri(self, value: Uri) -> None:
        self._uri = value

    def _start_line(self) -> str:
        return f"{self.method} {self.uri} {SIP_VERSION}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Request):
            return NotImplemented
        return (
            self.method == other.method
            and self.uri == other.uri
            and self.body == other.body
            and self._header_key() == other._header_key()
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Request({self.method!r}, {str(self.uri)!r}, {self.headers!r}, {self.body!r})"


class Response(Message):
    """A SIP response; `reason` may be empty."""

    __slots__ = ("reason", "status")

    def __init__(
        self,
        status: int,
        reason: str | None = None,
        headers: Headers | Iterable[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> None:
        super().__init__(_headers(headers), body)
        self.status = status
        self.reason = reason_phrase(status) if reason is None else reason

    def _error_status(self) -> int | None:
        return None

    @classmethod
    def for_request(
        cls,
        request: Request,
        status: int,
        reason: str | None = None,
        *,
        to_tag: str | None = None,
    ) -> "Response":
        """A response to `request` with Via, From, To, Call-ID and CSeq copied (§8.2.6.2).

        `to_tag` is added to To unless To already has a tag (an in-dialog request); a 100
        Trying also copies Timestamp (§8.2.6.1).
        """
        headers = Headers()
        for name, value in request.headers:
            if name in ("Via", "From", "Call-ID", "CSeq") or (
                status == 100 and name == "Timestamp"
            ):
                headers.add(name, value)
            elif name == "To":
                if to_tag is not None and not request.to.tag:
                    headers.add(name, str(request.to.with_tag(to_tag)))
                else:
                    headers.add(name, value)
        return cls(status, reason, headers)

    @property
    def status_class(self) -> int:
        """1 for provisional, 2 for success … 6 for global failure."""
        return self.status // 100

    def _start_line(self) -> str:
        return f"{SIP_VERSION} {self.status} {self.reason}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Response):
            return NotImplemented
        return (
            self.status == other.status
            and self.reason == other.reason
            and self.body == other.body
            and self._header_key() == other._header_key()
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Response({self.status!r}, {self.reason!r}, {self.headers!r}, {self.body!r})"
