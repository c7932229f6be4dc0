"""Instant messages (RFC 3428 MESSAGE) as a usage of the pure core: sending one outside a dialog
with at most one digest retry, sending one inside a dialog, and reading one a peer sent.

Like registration, the pager owns no transaction. The core sends what `take_requests()` returns
as new client transactions and hands back every final response (`handle_response`) or failure
(`handle_failure`); each message has a Call-ID of its own, which is how answers are matched.
Outcomes come out of `next_event()`.

RFC 3428 shapes the requests: a MESSAGE makes no dialog, so it carries no Contact (§4), and a
request over 1300 bytes may only travel a congestion-controlled transport (§8, RFC 3261
§18.1.1), so one that large bound for UDP fails here instead of being fragmented on the way.
Received text is given upward exactly as sent (control characters, trailing CRLF and all):
sanitising for the screen is the UI's job, and only it knows what the screen can show.
"""

import codecs
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from firmware.sip.auth import AuthError, DigestClient, auth_header_names
from firmware.sip.dialog import Dialog
from firmware.sip.errors import ParseError
from firmware.sip.headers import Via
from firmware.sip.message import Request, Response, reason_phrase
from firmware.sip.registration_messages import MAX_FORWARDS, loose_route, our_via
from firmware.sip.transport_types import Address, Target
from firmware.sip.uri import NameAddr, Uri

CONTENT_TYPE = "text/plain;charset=UTF-8"
MAX_RECEIVED_BODY = 64 * 1024
"""Bytes of text we take in one MESSAGE; more is answered 513. RFC 3428 sets no ceiling for
reliable transports, but a phone's screen and memory do."""
MAX_UDP_REQUEST = 1300
"""RFC 3428 §8: a larger MESSAGE must go over a congestion-controlled transport."""
NOT_CHARSETS = frozenset({"unicode-escape", "raw-unicode-escape", "idna", "punycode", "undefined"})
"""Python text codecs that are no MIME charset: a peer naming one gets 415, not their decoding."""


@dataclass(frozen=True, kw_only=True)
class MessageSent:
    """The message `message_id` was accepted (a 2xx) by the recipient or a server for it."""

    message_id: str


@dataclass(frozen=True, kw_only=True)
class MessageFailed:
    """The message `message_id` was not delivered: `status` is the final response, or None with
    `reason` `timeout`, `transport` or `too-large` when no response came or none could."""

    message_id: str
    status: int | None
    reason: str


@dataclass(frozen=True, kw_only=True)
class MessageReceived:
    """A peer's text, exactly as sent; `display` is the From display name, if any."""

    from_uri: Uri
    display: str | None
    text: str


PagerEvent = MessageSent | MessageFailed


class OutgoingMessage(NamedTuple):
    """A MESSAGE for the core to send as a new client transaction to `target`."""

    request: Request
    target: Target


@dataclass(frozen=True, kw_only=True)
class _Draft:
    """What every attempt at one message repeats; only Via, CSeq and credentials change."""

    message_id: str
    request_uri: Uri
    sender: str
    call_id: str
    route: Uri | None
    body: bytes
    target: Target


class Pager:
    """One account's outgoing instant messages, each in its own transaction."""

    def __init__(
        self,
        *,
        from_: Uri,
        display_name: str | None,
        local: Address,
        user_agent: str,
        credentials: DigestClient | None,
        new_tag: Callable[[], str],
        new_branch: Callable[[], str],
        new_call_id: Callable[[], str],
        new_cnonce: Callable[[], str],
    ) -> None:
        """`from_` is the account's address of record; `local` is where we listen, written
        into Via (the core may assign a new one when the address changes). `credentials`
        may be shared with other usages of the account: a nonce it already holds is reused,
        which often spares the challenge round trip."""
        self.local = local
        self._from = NameAddr(uri=from_.without_headers(), display_name=display_name)
        self._user_agent = user_agent
        self._credentials = credentials
        self._new_tag = new_tag
        self._new_branch = new_branch
        self._new_call_id = new_call_id
        self._new_cnonce = new_cnonce
        self._drafts: dict[str, _Draft] = {}
        self._sent: dict[str, Request] = {}
        self._requests: list[OutgoingMessage] = []
        self._events: deque[PagerEvent] = deque()

    def send(
        self,
        message_id: str,
        to: Uri,
        text: str,
        target: Target,
        now: float,
        *,
        route: Uri | None = None,
    ) -> None:
        """Send `text` to `to` through `target` (the resolved first hop), with a Route to the
        outbound proxy `route` if there is one. `now` is taken for the core's uniform calls:
        the transaction layer keeps the time. ValueError for a `message_id` still in flight
        or text that cannot be UTF-8 (a lone surrogate)."""
        if any(draft.message_id == message_id for draft in self._drafts.values()):
            raise ValueError(f"message {message_id!r} is still being sent")
        draft = _Draft(
            message_id=message_id,
            request_uri=to.without_headers(),
            sender=str(self._from.with_tag(self._new_tag())),
            call_id=self._new_call_id(),
            route=None if route is None else loose_route(route),
            body=text.encode("utf-8"),
            target=target,
        )
        self._drafts[draft.call_id] = draft
        self._emit(draft, 1)

    def take_requests(self) -> list[OutgoingMessage]:
        requests, self._requests = self._requests, []
        return requests

    def next_event(self) -> PagerEvent | None:
        return self._events.popleft() if self._events else None

    def handle_response(self, response: Response, now: float) -> None:
        """A response to a MESSAGE we produced; provisional ones, and answers to an attempt
        since replaced by its authenticated retry, are ignored."""
        if response.status < 200:
            return
        try:
            call_id, cseq = response.call_id, response.cseq
        except ParseError:
            return
        draft = self._drafts.get(call_id)
        sent = self._sent.get(call_id)
        if draft is None or sent is None or cseq.method != "MESSAGE" or cseq != sent.cseq:
            return
        status = response.status
        reason = response.reason or reason_phrase(status)
        if response.status_class == 2:
            self._finish(draft, MessageSent(message_id=draft.message_id))
        elif status in (401, 407):
            self._on_challenge(draft, sent, response, reason)
        else:
            self._fail(draft, status, reason)

    def handle_failure(self, request: Request, now: float, reason: str) -> None:
        """`request` (one we produced) timed out (`reason` "timeout") or could not be
        delivered ("transport")."""
        draft = self._drafts.get(request.call_id)
        sent = self._sent.get(request.call_id)
        if draft is not None and sent is not None and request.cseq == sent.cseq:
            self._fail(draft, None, reason)

    def _on_challenge(self, draft: _Draft, sent: Request, response: Response, reason: str) -> None:
        """One authenticated retry per message: a challenge to it means the credentials were
        refused (or the server loops), and asking again would not change that."""
        status = response.status
        credentials = self._credentials
        if credentials is None:
            self._fail(draft, status, f"{reason} (no credentials for this account)")
            return
        if sent.cseq.seq > 1:
            self._fail(draft, status, f"{reason} (credentials refused)")
            return
        offered = response.headers.lines(auth_header_names(status).challenge)
        try:
            credentials.receive(status, offered)
        except AuthError as error:
            self._fail(draft, status, f"{reason} (unusable challenge: {error})")
            return
        self._emit(draft, sent.cseq.seq + 1)

    def _emit(self, draft: _Draft, seq: int) -> None:
        request = _build(
            draft,
            seq,
            via=our_via(draft.target, self.local, self._new_branch()),
            user_agent=self._user_agent,
            credentials=self._authorization(draft),
        )
        if not draft.target.reliable and len(bytes(request)) > MAX_UDP_REQUEST:
            self._fail(draft, None, "too-large")
            return
        self._sent[draft.call_id] = request
        self._requests.append(OutgoingMessage(request, draft.target))

    def _authorization(self, draft: _Draft) -> Sequence[tuple[str, str]]:
        if self._credentials is None:
            return ()
        return self._credentials.authorization_headers(
            method="MESSAGE",
            uri=str(draft.request_uri),
            cnonce=self._new_cnonce(),
            body=draft.body,
        )

    def _fail(self, draft: _Draft, status: int | None, reason: str) -> None:
        self._finish(
            draft, MessageFailed(message_id=draft.message_id, status=status, reason=reason)
        )

    def _finish(self, draft: _Draft, event: PagerEvent) -> None:
        self._drafts.pop(draft.call_id, None)
        self._sent.pop(draft.call_id, None)
        self._events.append(event)


def _build(
    draft: _Draft,
    seq: int,
    *,
    via: Via,
    user_agent: str,
    credentials: Sequence[tuple[str, str]],
) -> Request:
    headers = [("Via", str(via)), ("Max-Forwards", MAX_FORWARDS)]
    if draft.route is not None:
        headers.append(("Route", f"<{draft.route}>"))
    headers += [
        ("From", draft.sender),
        ("To", str(NameAddr(uri=draft.request_uri))),
        ("Call-ID", draft.call_id),
        ("CSeq", f"{seq} MESSAGE"),
        ("Content-Type", CONTENT_TYPE),
        ("User-Agent", user_agent),
        *credentials,
    ]
    return Request("MESSAGE", draft.request_uri, headers, draft.body)


def in_dialog_message(dialog: Dialog, via: Via, text: str) -> Request:
    """A MESSAGE inside `dialog` (a call's, say), with its next CSeq; send it to
    `dialog.next_hop`. `via` carries the caller's fresh branch."""
    return dialog.create_request(
        "MESSAGE", via=via, body=text.encode("utf-8"), content_type=CONTENT_TYPE
    )


class MessageVerdict(NamedTuple):
    """How to answer a received MESSAGE: `status` and `reason` for the response, `headers`
    to add to it, and the event to report (None unless the text was accepted)."""

    status: int
    reason: str
    event: MessageReceived | None
    headers: tuple[tuple[str, str], ...] = ()


def receive_message(request: Request) -> MessageVerdict:
    """Read a MESSAGE a peer sent: text/plain in any charset Python knows (UTF-8, strictly,
    when none is named: a superset of the US-ASCII of RFC 2046 that every SIP client sends).
    A body without a Content-Type, or not valid in its charset, is a 400; another media type,
    a content coding or an unknown charset a 415 saying what we accept; more than
    `MAX_RECEIVED_BODY` bytes a 513. ValueError if `request` is not a MESSAGE."""
    if request.method != "MESSAGE":
        raise ValueError(f"not a MESSAGE: {request.method}")
    body = request.body
    if len(body) > MAX_RECEIVED_BODY:
        return _refusal(513, f"Message Too Large (over {MAX_RECEIVED_BODY} bytes)")
    try:
        content_type = request.content_type
        sender = request.from_
    except ParseError as error:
        return _refusal(400, f"Bad Request ({error})")
    codings = [c.strip().lower() for c in request.headers.get_all("Content-Encoding")]
    if any(coding != "identity" for coding in codings):
        return _refusal(
            415, "Unsupported Media Type (content coding)", ("Accept-Encoding", "identity")
        )
    if content_type is None:
        if body:
            return _refusal(400, "Bad Request (a body without Content-Type)")
        return _accepted(sender, "")
    if content_type.mime != "text/plain":
        return _refusal(
            415, f"Unsupported Media Type ({content_type.mime})", ("Accept", "text/plain")
        )
    if not body:
        return _accepted(sender, "")
    charset = content_type.param("charset") or "utf-8"
    try:
        codec = codecs.lookup(charset)
    except (LookupError, ValueError):  # ValueError: a NUL in the name
        codec = None
    if codec is None or codec.name in NOT_CHARSETS:
        return _refusal(
            415,
            f"Unsupported Media Type (charset {_excerpt(charset)})",
            ("Accept", CONTENT_TYPE),
        )
    try:
        text = body.decode(codec.name)
    except UnicodeDecodeError as error:
        return _refusal(
            400, f"Bad Request (body is not valid {_excerpt(charset)} at byte {error.start})"
        )
    except LookupError:  # a binary codec such as base64 or zlib: bytes in, bytes out
        return _refusal(
            415,
            f"Unsupported Media Type (charset {_excerpt(charset)})",
            ("Accept", CONTENT_TYPE),
        )
    return _accepted(sender, text)


def _accepted(sender: NameAddr, text: str) -> MessageVerdict:
    event = MessageReceived(from_uri=sender.uri, display=sender.display_name, text=text)
    return MessageVerdict(200, "OK", event)


def _refusal(status: int, reason: str, *headers: tuple[str, str]) -> MessageVerdict:
    return MessageVerdict(status, reason, None, headers)


def _excerpt(text: str) -> str:
    """A peer's charset name as a reason phrase may quote it: escaped, and cut short."""
    return ascii(text if len(text) <= 40 else text[:40] + "...")
