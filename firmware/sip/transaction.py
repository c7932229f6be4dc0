"""The SIP transaction layer (RFC 3261 §17): every client and server transaction of one UA,
matching, timers and the events the transaction user (the UA core) consumes.

Shaped like aioquic and h11: nothing here reads a clock or touches a socket. Every entry point
takes `now`; `get_timer()` says when `handle_timer(now)` is next due; outgoing messages and
everything the TU must hear come out of `next_event()` as frozen events, in order. The stack
thread sends each `Transmit` and hands the rest to the usages.

Matching (§17.1.3, §17.2.3): responses go to client transactions by top-Via branch and CSeq
method; requests go to server transactions by branch, sent-by and method (an ACK matches its
INVITE, a CANCEL has its own transaction). Requests without the `z9hG4bK` cookie come from RFC
2543 peers and are matched on Request-URI, tags, Call-ID, CSeq and the whole top Via instead.
Retransmissions are absorbed here and never reach the TU twice. An ACK with its own branch
acknowledges a 2xx: it is matched to the INVITE by dialog and CSeq number so the 2xx
retransmissions stop (see transaction_server), and reported as `AckReceived`.
"""

import heapq
import itertools
from collections import deque
from dataclasses import dataclass

from firmware.sip.headers import Via
from firmware.sip.message import Message, Request, Response
from firmware.sip.timers import TimerConfig, TimerName
from firmware.sip.transaction_client import (
    ClientState,
    ClientTransaction,
    InviteClientTransaction,
    NonInviteClientTransaction,
    hop_request,
    raw_header,
)
from firmware.sip.transaction_server import (
    InviteServerTransaction,
    NonInviteServerTransaction,
    ServerState,
    ServerTransaction,
)
from firmware.sip.transport_types import (
    DEFAULT_PORTS,
    RELIABLE_TRANSPORTS,
    Address,
    Target,
    check_transport,
)

MAGIC_COOKIE = "z9hG4bK"
"""The branch prefix of RFC 3261 requests (§8.1.1.7); without it a request is RFC 2543's."""


class LocalProtocolError(Exception):
    """The TU asked for something SIP forbids: a second final response, a response on a key
    that is not a live server transaction, a request without a proper branch…"""


@dataclass(frozen=True, slots=True)
class TransactionKey:
    """The handle of one transaction, unique within its layer for the layer's lifetime."""

    is_server: bool
    method: str
    serial: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Transmit:
    """Send `message` to `target`. `key` is None for a 2xx ACK, which has no transaction."""

    target: Target
    message: Message
    key: TransactionKey | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestReceived:
    """A new request, with its server transaction: answer it with `respond(key, …)`.

    The top Via already carries `received`/`rport` as §18.2.1 and RFC 3581 require, so a
    response built from this request goes back the way it came.
    """

    key: TransactionKey
    request: Request
    source: Address
    transport: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseReceived:
    """A response to our request, from `source`: every provisional, the final, and after an
    INVITE's first 2xx every further 2xx (retransmitted or from another fork), each to be ACKed
    (§13.2.2.4)."""

    key: TransactionKey
    response: Response
    source: Address


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionTimeout:
    """No final response came (Timer B or F), or no ACK came for our final response (Timer H,
    or Timer L after a 2xx: the UA should send BYE, §13.3.1.4)."""

    key: TransactionKey
    request: Request


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportFailed:
    """The transport reported that it could not deliver (§17.1.4, §17.2.4)."""

    key: TransactionKey
    request: Request


@dataclass(frozen=True, slots=True, kw_only=True)
class StrayResponse:
    """A response no transaction matches, e.g. a 2xx retransmission after Timer M."""

    response: Response
    source: Address
    transport: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AckReceived:
    """The ACK of a 2xx. `key` is the INVITE's server transaction when it was still waiting for
    it (its 2xx retransmissions have stopped), None for an ACK that matched nothing."""

    key: TransactionKey | None
    request: Request
    source: Address
    transport: str


Event = (
    Transmit
    | RequestReceived
    | ResponseReceived
    | TransactionTimeout
    | TransportFailed
    | StrayResponse
    | AckReceived
)


def build_cancel(invite: Request) -> Request:
    """The CANCEL of `invite` (§9.1): same Request-URI, Call-ID, From, To, CSeq number, top Via
    and Route; send it with `send_request` to the INVITE's target, once a provisional arrived."""
    if invite.method != "INVITE":
        raise LocalProtocolError(f"only INVITE can be cancelled, not {invite.method}")
    return hop_request(invite, "CANCEL", raw_header(invite, "To"))


class _Reporter:
    """Turns one transaction's reports into events carrying its key."""

    __slots__ = ("_events", "_key", "_request")

    def __init__(self, events: deque[Event], key: TransactionKey, request: Request) -> None:
        self._events = events
        self._key = key
        self._request = request

    def transmit(self, message: Message, target: Target) -> None:
        self._events.append(Transmit(target=target, message=message, key=self._key))

    def deliver(self, response: Response, source: Address) -> None:
        self._events.append(ResponseReceived(key=self._key, response=response, source=source))

    def time_out(self) -> None:
        self._events.append(TransactionTimeout(key=self._key, request=self._request))


_SentBy = tuple[str, int | None]


def _sent_by(via: Via) -> _SentBy:
    return via.host.lower(), via.port


def _via_identity(via: Via) -> tuple[str, str, int | None, tuple[tuple[str, str | None], ...]]:
    return (
        via.transport.upper(),
        via.host.lower(),
        via.port,
        tuple((name.lower(), value) for name, value in via.params),
    )


def _copy_request(request: Request) -> Request:
    return Request(request.method, request.uri, request.headers.copy(), request.body)


def _stamp_via(request: Request, source: Address) -> Request:
    """§18.2.1 and RFC 3581: note in the top Via where the request really came from."""
    via = request.top_via
    stamped = via
    source_ip = source.host.strip("[]")
    if via.host.strip("[]") != source_ip or via.has_rport:
        stamped = stamped.with_param("received", source_ip)
    if via.has_rport and via.rport is None:
        stamped = stamped.with_param("rport", str(source.port))
    if stamped == via:
        return request
    headers = request.headers.copy()
    headers.remove_first("Via")
    headers.add_first("Via", str(stamped))
    return Request(request.method, request.uri, headers, request.body)


def _reply_target(via: Via, source: Address, transport: str) -> Target:
    """Where responses go (§18.2.2, RFC 3581 §4): back over the connection on a reliable
    transport; else to `maddr`, or to the source address at the Via port (the source port if
    the client asked for `rport`)."""
    if transport in RELIABLE_TRANSPORTS:
        return Target(transport, source.host, source.port)
    default_port = DEFAULT_PORTS[transport]
    if via.maddr:
        return Target(transport, via.maddr, via.port or default_port)
    port = source.port if via.has_rport else (via.port or default_port)
    return Target(transport, source.host, port)


def _legacy_match(tx: ServerTransaction, incoming: Request, method: str) -> bool:
    """§17.2.3, last paragraphs: does RFC 2543 `incoming` belong to `tx`, whose request must
    have `method`? An ACK's To tag must be the one of the final response `tx` sent."""
    original = tx.request
    if (
        original.method != method
        or incoming.call_id != original.call_id
        or incoming.cseq.seq != original.cseq.seq
        or incoming.from_.tag != original.from_.tag
        or _via_identity(incoming.top_via) != _via_identity(original.top_via)
        or not incoming.uri.equivalent(original.uri)
    ):
        return False
    if incoming.method == "ACK":
        return tx.final is not None and incoming.to.tag == tx.final.to.tag
    return incoming.to.tag == original.to.tag


class TransactionLayer:
    """All transactions of one UA. Not thread-safe: the stack thread alone drives it."""

    def __init__(self, config: TimerConfig | None = None) -> None:
        self.config = config or TimerConfig()
        self._events: deque[Event] = deque()
        self._serials = itertools.count(1)
        self._timer_heap: list[tuple[float, int, TransactionKey, TimerName]] = []
        self._pushes = itertools.count()
        self._clients: dict[TransactionKey, ClientTransaction] = {}
        self._client_index: dict[tuple[str, str], TransactionKey] = {}
        self._servers: dict[TransactionKey, ServerTransaction] = {}
        self._server_index: dict[tuple[str, _SentBy, str], TransactionKey] = {}
        self._legacy_servers: list[TransactionKey] = []

    def __len__(self) -> int:
        """How many transactions are alive."""
        return len(self._clients) + len(self._servers)

    # The TU's requests

    def send_request(self, request: Request, target: Target, now: float) -> TransactionKey:
        """Start a client transaction for `request` (not ACK) and transmit it to `target`.

        The request goes out as given: the caller has put in the top Via with a fresh
        `z9hG4bK` branch (a CANCEL reuses its INVITE's, §9.1), and its transport matches
        `target`'s. The layer keeps a copy, so the caller may reuse its object.
        """
        if request.method == "ACK":
            raise LocalProtocolError("an ACK is not a transaction: use send_ack for a 2xx ACK")
        via = request.top_via
        branch = via.branch or ""
        if not branch.startswith(MAGIC_COOKIE) or branch == MAGIC_COOKIE:
            raise LocalProtocolError(f"top Via branch must start with {MAGIC_COOKIE}: {branch!r}")
        if via.transport.lower() != target.transport:
            raise LocalProtocolError(f"Via says {via.transport} but the target is {target}")
        if request.cseq.method != request.method:
            raise LocalProtocolError(f"CSeq method {request.cseq.method} is not {request.method}")
        index = (branch, request.method)
        if index in self._client_index:
            raise LocalProtocolError(f"branch {branch} is already in use for {request.method}")
        request = _copy_request(request)
        key = TransactionKey(False, request.method, next(self._serials))
        sink = _Reporter(self._events, key, request)
        tx: ClientTransaction
        if request.method == "INVITE":
            tx = InviteClientTransaction(request, target, self.config, sink, now)
        else:
            tx = NonInviteClientTransaction(request, target, self.config, sink, now)
        self._clients[key] = tx
        self._watch(key, tx)
        self._client_index[index] = key
        return key

    def send_ack(self, ack: Request, target: Target) -> None:
        """Transmit the ACK of a 2xx (built by the dialog, §13.2.2.4) once; the UA sends it
        again for each retransmitted 2xx it receives."""
        if ack.method != "ACK":
            raise LocalProtocolError(f"send_ack needs an ACK, not {ack.method}")
        self._events.append(Transmit(target=target, message=_copy_request(ack), key=None))

    def respond(self, key: TransactionKey, response: Response, now: float) -> None:
        """Send `response` on server transaction `key`; the transaction retransmits it as its
        state machine requires. A 2xx to an INVITE must carry a To tag (it makes the dialog)."""
        tx = self._servers.get(key)
        if tx is None:
            raise LocalProtocolError(f"{key} is not a live server transaction")
        if not 100 <= response.status <= 699:
            raise LocalProtocolError(f"status {response.status} is not a SIP status")
        if tx.final is not None:
            raise LocalProtocolError(f"{key} already has a final response ({tx.final.status})")
        if response.cseq != tx.request.cseq:
            raise LocalProtocolError(f"response CSeq {response.cseq} is not the request's")
        if tx.request.method == "INVITE" and 200 <= response.status < 300 and not response.to.tag:
            raise LocalProtocolError("a 2xx to an INVITE needs a To tag")
        tx.respond(
            Response(response.status, response.reason, response.headers.copy(), response.body), now
        )
        self._forget_if_done(key)

    def terminate(self, key: TransactionKey) -> None:
        """Drop a transaction without a word, e.g. an INVITE whose CANCEL got no final response
        within 64·T1 (§9.1). Unknown or finished keys are ignored."""
        self._forget(key)

    # What the transport reports

    def receive(self, message: Message, source: Address, transport: str, now: float) -> None:
        """A message `parse_message` returned, from `source` over `transport`."""
        check_transport(transport)
        if isinstance(message, Response):
            self._receive_response(message, source, transport, now)
        elif isinstance(message, Request):
            self._receive_request(message, source, transport, now)

    def transport_error(self, where: TransactionKey | Target) -> None:
        """The transport could not send for transaction `where`, or to target `where` (every
        transaction sending there fails). Each is terminated with a `TransportFailed`."""
        if isinstance(where, TransactionKey):
            keys = [where] if where in self._clients or where in self._servers else []
        else:
            keys = [key for key, tx in self._clients.items() if tx.target == where]
            keys += [key for key, tx in self._servers.items() if tx.reply_to == where]
        for key in keys:
            tx = self._clients.get(key) or self._servers[key]
            tx.transport_failed()
            self._events.append(TransportFailed(key=key, request=tx.request))
            self._forget(key)

    # Time

    def get_timer(self) -> float | None:
        """The earliest deadline of any transaction, or None when nothing is waiting."""
        due = self._earliest()
        return None if due is None else due[0]

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at `now`, in deadline order. Periodic timers count on from their
        deadline, not from `now`, so a late call keeps the RFC schedule exactly."""
        while (due := self._earliest()) is not None and due[0] <= now:
            at, key, timer = due
            tx = self._clients.get(key) or self._servers[key]
            tx.deadlines.stop(timer)
            tx.fire(timer, at)
            self._forget_if_done(key)

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    # Inspection

    def state_of(self, key: TransactionKey) -> ClientState | ServerState | None:
        """The state of a live transaction; None once it is gone."""
        tx = self._clients.get(key) or self._servers.get(key)
        return None if tx is None else tx.state

    def matching_invite(self, cancel: Request) -> TransactionKey | None:
        """The INVITE server transaction a received CANCEL targets (§9.2), or None (answer
        481 then)."""
        return self._find_server(cancel, "INVITE")

    # Internals

    def _receive_response(
        self, response: Response, source: Address, transport: str, now: float
    ) -> None:
        key = self._client_index.get((response.top_via.branch or "", response.cseq.method))
        if key is None:
            self._events.append(
                StrayResponse(response=response, source=source, transport=transport)
            )
            return
        self._clients[key].receive(response, source, now)
        self._forget_if_done(key)

    def _receive_request(
        self, request: Request, source: Address, transport: str, now: float
    ) -> None:
        reply_to = _reply_target(request.top_via, source, transport)
        request = _stamp_via(request, source)
        is_ack = request.method == "ACK"
        key = self._find_server(request, "INVITE" if is_ack else request.method)
        if key is None and is_ack:
            key = self._find_accepted_invite(request)
        if key is not None:
            if self._servers[key].receive(request, now):
                self._events.append(
                    AckReceived(key=key, request=request, source=source, transport=transport)
                )
            self._forget_if_done(key)
            return
        if is_ack:
            self._events.append(
                AckReceived(key=None, request=request, source=source, transport=transport)
            )
            return
        key = TransactionKey(True, request.method, next(self._serials))
        sink = _Reporter(self._events, key, request)
        tx: ServerTransaction
        if request.method == "INVITE":
            tx = InviteServerTransaction(request, reply_to, self.config, sink, now)
        else:
            tx = NonInviteServerTransaction(request, reply_to, self.config, sink)
        self._servers[key] = tx
        self._watch(key, tx)
        branch = request.top_via.branch or ""
        if branch.startswith(MAGIC_COOKIE):
            self._server_index[(branch, _sent_by(request.top_via), request.method)] = key
        else:
            self._legacy_servers.append(key)
        self._events.append(
            RequestReceived(key=key, request=request, source=source, transport=transport)
        )

    def _find_server(self, request: Request, method: str) -> TransactionKey | None:
        via = request.top_via
        branch = via.branch or ""
        if branch.startswith(MAGIC_COOKIE):
            return self._server_index.get((branch, _sent_by(via), method))
        for key in self._legacy_servers:
            if _legacy_match(self._servers[key], request, method):
                return key
        return None

    def _find_accepted_invite(self, ack: Request) -> TransactionKey | None:
        """The INVITE whose 2xx this ACK acknowledges: same Call-ID, CSeq number, From tag, and
        the To tag of our 2xx (§13.2.2.4 gives the ACK a branch of its own)."""
        for key, tx in self._servers.items():
            if (
                tx.state is ServerState.ACCEPTED
                and tx.final is not None
                and tx.request.call_id == ack.call_id
                and tx.request.cseq.seq == ack.cseq.seq
                and tx.request.from_.tag == ack.from_.tag
                and tx.final.to.tag == ack.to.tag
            ):
                return key
        return None

    def _watch(self, key: TransactionKey, tx: ClientTransaction | ServerTransaction) -> None:
        """Keep `tx`'s deadlines in the layer's heap, so finding the next one costs log n
        rather than a scan of every live transaction (Timer J alone keeps each answered
        request for 32 s, so a busy phone holds thousands)."""

        def schedule(name: TimerName, at: float) -> None:
            heapq.heappush(self._timer_heap, (at, next(self._pushes), key, name))

        tx.deadlines.listener = schedule
        for name, at in tx.deadlines.running():
            schedule(name, at)

    def _earliest(self) -> tuple[float, TransactionKey, TimerName] | None:
        """The heap's first entry that is still a running deadline; stale ones (stopped,
        restarted or of a finished transaction) are dropped as they surface."""
        heap = self._timer_heap
        while heap:
            at, _, key, name = heap[0]
            tx: ClientTransaction | ServerTransaction | None = self._clients.get(key)
            if tx is None:
                tx = self._servers.get(key)
            if tx is not None and tx.deadlines.get(name) == at:
                return at, key, name
            heapq.heappop(heap)
        return None

    def _forget_if_done(self, key: TransactionKey) -> None:
        tx = self._clients.get(key) or self._servers.get(key)
        if tx is not None and tx.state in (ClientState.TERMINATED, ServerState.TERMINATED):
            self._forget(key)

    def _forget(self, key: TransactionKey) -> None:
        client = self._clients.pop(key, None)
        if client is not None:
            self._client_index.pop((client.request.top_via.branch or "", key.method), None)
        server = self._servers.pop(key, None)
        if server is not None:
            via = server.request.top_via
            self._server_index.pop((via.branch or "", _sent_by(via), key.method), None)
            if key in self._legacy_servers:
                self._legacy_servers.remove(key)
