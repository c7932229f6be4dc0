"""Dialogs (RFC 3261 §12): the state two UAs share between an INVITE (or SUBSCRIBE) and its end.

A `Dialog` is keyed by its `DialogId` (Call-ID, local tag, remote tag); forked responses with
different To tags make different dialogs, so the UA keeps a mapping from `DialogId` to dialog.
A dialog builds the requests sent inside it (route set, strict-router fallback, CSeq, ACK for
2xx) and checks the requests received in it; it sends nothing itself. Like the transaction layer
it generates no randomness: the caller passes the Via with its fresh branch.
"""

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from firmware.sip.headers import Headers, Via
from firmware.sip.message import Message, Request, Response
from firmware.sip.transaction import LocalProtocolError
from firmware.sip.uri import NameAddr, Uri

TARGET_REFRESH_METHODS = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY"})
"""Requests whose Contact replaces the remote target (§12.2, RFC 3311, RFC 6665 §4)."""

UNSEQUENCED_METHODS = frozenset({"ACK", "CANCEL"})
"""Requests that reuse the CSeq number of the request they belong to (§12.2.1.1, §12.2.2)."""

_NOT_IN_REQUEST_URI = ("method",)
"""URI parameters RFC 3261 Table 1 (§19.1.1) forbids in a Request-URI; URI headers are too."""


class RemoteProtocolError(Exception):
    """The peer sent something a dialog must refuse; answer it with `status`."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class DialogState(StrEnum):
    EARLY = "early"
    CONFIRMED = "confirmed"


@dataclass(frozen=True, slots=True)
class DialogId:
    """Call-ID, local tag and remote tag (§12). An RFC 2543 peer may send no tag: its tag is
    the empty string."""

    call_id: str
    local_tag: str
    remote_tag: str

    @classmethod
    def of_request(cls, request: Request) -> "DialogId | None":
        """The dialog a received request belongs to (we are the To side), or None for a
        request outside any dialog (no To tag)."""
        local = request.to.tag
        if not local:
            return None
        return cls(request.call_id, local, request.from_.tag or "")

    @classmethod
    def of_response(cls, response: Response) -> "DialogId | None":
        """The dialog a response to our request belongs to (we are the From side), or None
        when it carries no To tag (a 100 Trying)."""
        remote = response.to.tag
        local = response.from_.tag
        if not remote or not local:
            return None
        return cls(response.call_id, local, remote)


def _without_tag(value: NameAddr) -> NameAddr:
    return dataclasses.replace(
        value, params=tuple(p for p in value.params if p[0].lower() != "tag")
    )


def _contact_uri(message: Message) -> Uri | None:
    contacts = message.contacts
    return contacts[0].uri if contacts else None


class Dialog:
    """One dialog's state (§12.1): mutable, owned by the usage (INVITE session, subscription)."""

    __slots__ = (
        "call_id",
        "local_contact",
        "local_seq",
        "local_tag",
        "local_uri",
        "remote_seq",
        "remote_tag",
        "remote_target",
        "remote_uri",
        "route_set",
        "secure",
        "state",
    )

    def __init__(
        self,
        *,
        call_id: str,
        local_tag: str,
        remote_tag: str,
        local_uri: NameAddr,
        remote_uri: NameAddr,
        remote_target: Uri,
        route_set: tuple[NameAddr, ...] = (),
        local_seq: int | None = None,
        remote_seq: int | None = None,
        local_contact: NameAddr | None = None,
        secure: bool = False,
        state: DialogState = DialogState.CONFIRMED,
    ) -> None:
        self.call_id = call_id
        self.local_tag = local_tag
        self.remote_tag = remote_tag
        self.local_uri = _without_tag(local_uri)
        self.remote_uri = _without_tag(remote_uri)
        self.remote_target = remote_target
        self.route_set = route_set
        self.local_seq = local_seq
        self.remote_seq = remote_seq
        self.local_contact = local_contact
        self.secure = secure
        self.state = state

    @classmethod
    def as_uac(cls, request: Request, response: Response, *, secure: bool = False) -> "Dialog":
        """The dialog a 101-299 response with a To tag makes with our `request` (§12.1.2):
        early for a provisional, confirmed for a 2xx. The route set is the response's
        Record-Route reversed. `secure`: the request went over TLS to a SIPS URI."""
        if not 101 <= response.status <= 299 or not response.to.tag:
            raise LocalProtocolError(
                f"a {response.status} without To tag creates no dialog (§12.1.2)"
            )
        local_tag = request.from_.tag
        if not local_tag:
            raise LocalProtocolError("our request has no From tag")
        contacts = request.contacts
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=response.to.tag,
            local_uri=request.from_,
            remote_uri=request.to,
            remote_target=_contact_uri(response) or request.uri,
            route_set=tuple(reversed(response.headers.record_routes())),
            local_seq=request.cseq.seq,
            local_contact=contacts[0] if contacts else None,
            secure=secure,
            state=DialogState.EARLY if response.status < 200 else DialogState.CONFIRMED,
        )

    @classmethod
    def as_uas(cls, request: Request, response: Response, *, secure: bool = False) -> "Dialog":
        """The dialog our `response` (101-299, To tag added) makes with a received `request`
        (§12.1.1). The route set is the request's Record-Route in order; `response` should copy
        those Record-Route headers. `secure`: the request came over TLS to a SIPS URI."""
        if not 101 <= response.status <= 299 or not response.to.tag:
            raise LocalProtocolError(
                f"a {response.status} without To tag creates no dialog (§12.1.1)"
            )
        contacts = response.contacts
        return cls(
            call_id=request.call_id,
            local_tag=response.to.tag,
            remote_tag=request.from_.tag or "",
            local_uri=request.to,
            remote_uri=request.from_,
            remote_target=_contact_uri(request) or request.uri,
            route_set=request.headers.record_routes(),
            remote_seq=request.cseq.seq,
            local_contact=contacts[0] if contacts else None,
            secure=secure,
            state=DialogState.EARLY if response.status < 200 else DialogState.CONFIRMED,
        )

    @property
    def id(self) -> DialogId:
        return DialogId(self.call_id, self.local_tag, self.remote_tag)

    @property
    def next_hop(self) -> Uri:
        """Where requests in this dialog are sent (§8.1.2, §12.2.1.1): the first route if there
        is a route set, loose or strict, else the remote target. Resolve it to a `Target`."""
        return self.route_set[0].uri if self.route_set else self.remote_target

    @property
    def strict_routing(self) -> bool:
        """True when the first route lacks `lr`: an RFC 2543 strict router (§12.2.1.1)."""
        return bool(self.route_set) and not self.route_set[0].uri.has_param("lr")

    def confirm(self) -> None:
        """The UAS sent its 2xx: the early dialog is confirmed (§12.1.1)."""
        self.state = DialogState.CONFIRMED

    def receive_response(self, request: Request, response: Response) -> None:
        """A response to `request`, sent in (or creating) this dialog: a 2xx confirms an early
        dialog with the route set recomputed from it (§13.2.2.4), and a 2xx to a target
        refresh request replaces the remote target (§12.2.1.2)."""
        if not 200 <= response.status < 300:
            return
        if self.state is DialogState.EARLY:
            self.route_set = tuple(reversed(response.headers.record_routes()))
            self.state = DialogState.CONFIRMED
        contact = _contact_uri(response)
        if request.method in TARGET_REFRESH_METHODS and contact is not None:
            self.remote_target = contact

    def check_request(self, request: Request) -> None:
        """Raise RemoteProtocolError(500) if `request` is out of order (§12.2.2): its CSeq must
        be above every earlier one, ACK and CANCEL excepted. Changes nothing."""
        if request.method in UNSEQUENCED_METHODS or self.remote_seq is None:
            return
        if request.cseq.seq <= self.remote_seq:
            raise RemoteProtocolError(
                f"CSeq {request.cseq.seq} is not above {self.remote_seq}: out of order", 500
            )

    def receive_request(self, request: Request) -> None:
        """Take in a request received in this dialog: check its order (see `check_request`),
        remember its CSeq, and take a target refresh's Contact as the remote target."""
        self.check_request(request)
        if request.method in UNSEQUENCED_METHODS:
            return
        self.remote_seq = request.cseq.seq
        contact = _contact_uri(request)
        if request.method in TARGET_REFRESH_METHODS and contact is not None:
            self.remote_target = contact

    def create_request(
        self,
        method: str,
        *,
        via: Via,
        body: bytes = b"",
        content_type: str | None = None,
        extra_headers: Iterable[tuple[str, str]] = (),
    ) -> Request:
        """A new request in this dialog (§12.2.1.1) with the next local CSeq; send it to
        `next_hop`. `via` carries the caller's fresh branch. Our Contact goes into target
        refresh requests. ACK for a 2xx comes from `create_ack`, CANCEL from `build_cancel`."""
        if method in UNSEQUENCED_METHODS:
            raise LocalProtocolError(f"{method} reuses its request's CSeq; not create_request")
        self.local_seq = 1 if self.local_seq is None else self.local_seq + 1
        return self._request(
            method,
            self.local_seq,
            via=via,
            body=body,
            content_type=content_type,
            extra_headers=extra_headers,
        )

    def create_ack(
        self,
        invite: Request,
        *,
        via: Via,
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Request:
        """The ACK of a 2xx to `invite` (§13.2.2.4): built like any request in the dialog but
        with the INVITE's CSeq number, its credentials, and a branch of its own."""
        credentials = [
            (name, value)
            for name, value in invite.headers
            if name in ("Authorization", "Proxy-Authorization")
        ]
        return self._request(
            "ACK",
            invite.cseq.seq,
            via=via,
            body=body,
            content_type=content_type,
            extra_headers=credentials,
        )

    def _request(
        self,
        method: str,
        seq: int,
        *,
        via: Via,
        body: bytes,
        content_type: str | None,
        extra_headers: Iterable[tuple[str, str]],
    ) -> Request:
        request_uri, routes = self._request_uri_and_routes()
        headers = Headers()
        headers.add("Via", str(via))
        headers.add("Max-Forwards", "70")
        for route in routes:
            headers.add("Route", str(route))
        headers.add("From", str(self.local_uri.with_tag(self.local_tag)))
        remote = self.remote_uri.with_tag(self.remote_tag) if self.remote_tag else self.remote_uri
        headers.add("To", str(remote))
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{seq} {method}")
        if method in TARGET_REFRESH_METHODS and self.local_contact is not None:
            headers.add("Contact", str(self.local_contact))
        if content_type is not None:
            headers.add("Content-Type", content_type)
        for name, value in extra_headers:
            headers.add(name, value)
        return Request(method, request_uri, headers, body)

    def _request_uri_and_routes(self) -> tuple[Uri, tuple[NameAddr, ...]]:
        """Loose routing: the remote target is the Request-URI and the route set the Route.
        A strict router first (§12.2.1.1): its URI, cleaned for a Request-URI, becomes the
        Request-URI, and the remote target joins the end of the Route."""
        if not self.strict_routing:
            return self.remote_target, self.route_set
        first = self.route_set[0].uri.without_headers()
        for name in _NOT_IN_REQUEST_URI:
            first = first.without_param(name)
        return first, (*self.route_set[1:], NameAddr(uri=self.remote_target))
